"""A worker's rehearsal of a caller's environment (memccp_py/warm/takeover.py) changes
nothing a call then sees."""

import ctypes
import os

from memccp_py.warm import takeover


def c_getenv(name: bytes) -> bytes | None:
    """NAME as the C library's getenv() reads it (the resolver's view)."""
    libc = ctypes.CDLL(None)
    libc.getenv.restype = ctypes.c_char_p
    return libc.getenv(name)


def test_environment_rehearsal_leaves_both_environments_as_they_were():
    """After the rehearsal, os.environ and the C library's environment hold what they held."""
    before = dict(os.environb)
    c_before = {key: c_getenv(key) for key in before}
    takeover.rehearse_environment()
    assert dict(os.environb) == before
    assert {key: c_getenv(key) for key in before} == c_before
    assert all(c_getenv(key) is None for key, _ in takeover.STAND_IN_ENVIRONMENT)
