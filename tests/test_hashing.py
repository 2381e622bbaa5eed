"""libmemcached's hashes: reference values read from Debian's libhashkit, and,
where libhashkit is installed, a cross-check on random keys."""

import ctypes
import ctypes.util
import random

import pytest

from memccp_py.placement.hashing import HASHES
from memccp_py.choices import HASH_NAMES

KEYS = [b"", b"a", b"foo", b"/images/a.gif", b"hello world", b"abcdefghijklm", "été".encode(), b"\xff"]
# Values libhashkit_digest() of Debian's libhashkit2 1.1.4 returns (hsieh: upstream's, not built there).
REFERENCE = {
    "default": [0x00000000, 0xCA2E9442, 0x238678DD, 0x864D957A, 0x3E4A5A57, 0x6D99F6DC, 0x7FCB4B35, 0xAE65A494],
    "md5": [0xD98C1DD4, 0xB975C10C, 0xDB18BDAC, 0xE67FB672, 0xBB3BB65E, 0xD1BDAE22, 0x1E6AAFDE, 0xD44F5900],
    "crc": [0x0, 0x68B7, 0x0C73, 0x395E, 0x0D4A, 0x5DF4, 0x44D1, 0x7F00],
    "fnv1_64": [0x84222325, 0x8601B7BE, 0x6BA13533, 0xDC43DDAE, 0xB1910E6F, 0x3DF1E6A2, 0xEE202E17, 0x79FE4820],
    "fnv1a_64": [0x84222325, 0x8601EC8C, 0xFED9D577, 0x439DA980, 0x023CD2E7, 0x398BC308, 0xEA769C57, 0x79FE466E],
    "fnv1_32": [0x811C9DC5, 0x050C5D7E, 0x408F5E13, 0xAEF29E4E, 0x548DA96F, 0xE589B522, 0xBEBB7C97, 0xFAF3A2E0],
    "fnv1a_32": [0x811C9DC5, 0xE40C292C, 0xA9F37ED7, 0x86A69F40, 0xD58B3FA7, 0x3B8356E8, 0x0BEEA017, 0xF9F3A14E],
    "murmur": [0x0, 0x4B41757C, 0xC4E0338F, 0xBB9984A8, 0x5E19153B, 0x2987D8BB, 0xDA710ACB, 0xDB530A9C],
    "jenkins": [0xDEADBEFC, 0xE0A38690, 0x99F84F99, 0x849169A8, 0x153343FB, 0xB621E85F, 0x89466C13, 0xE1964DA8],
    "murmur3": [0x0, 0x8872DBC8, 0xA5F500B2, 0xA4D96CCD, 0xA292005D, 0x14418AE6, 0x5BECFBDB, 0x780F613E],
    "hsieh": [0x0, 0x93642E87, 0x76D4D427, 0x56DDA12E, 0x4F799873, None, None, None],
}
# libhashkit's hashkit_hash_algorithm_t numbering
ALGORITHM = {"default": 0, "md5": 1, "crc": 2, "fnv1_64": 3, "fnv1a_64": 4, "fnv1_32": 5, "fnv1a_32": 6,
             "hsieh": 7, "murmur": 8, "jenkins": 9, "murmur3": 10}


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_reference_values(name):
    """Each --hash gives libhashkit's value for every reference key, bytes >= 0x80 included."""
    for key, expected in zip(KEYS, REFERENCE[name]):
        if expected is not None:
            assert HASHES[name](key) == expected, (name, key)


def _libhashkit():
    path = ctypes.util.find_library("hashkit")
    if not path:
        pytest.skip("libhashkit (libhashkit2) is not installed")
    lib = ctypes.CDLL(path)
    lib.libhashkit_digest.restype = ctypes.c_uint32
    lib.libhashkit_digest.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int]
    lib.libhashkit_has_algorithm.restype = ctypes.c_bool
    return lib


# hsieh on keys whose tail has bytes >= 0x80, from upstream libhashkit's hsieh built with gcc
# on x86-64, where char is signed: a 3-byte tail's last byte is sign-extended there.
HSIEH_HIGH_TAILS = {b"\xff\xff\xff": 0x8A98F6AE, b"abc\x80\x81\x82\x83": 0x78EA9DEF,
                    b"\xe9t\xe9": 0x3A499135, "/café.gif".encode(): 0x07C6BA7E}


def test_hsieh_tail_bytes_as_upstream_on_x86():
    """hsieh's tail bytes >= 0x80 give upstream libhashkit's values (signed char on x86)."""
    assert {k: HASHES["hsieh"](k) for k in HSIEH_HIGH_TAILS} == HSIEH_HIGH_TAILS


@pytest.mark.parametrize("name", sorted(ALGORITHM))
def test_against_installed_libhashkit(name):
    """On 2,000 random keys every hash equals the installed libhashkit's (when it has it)."""
    lib = _libhashkit()
    if not lib.libhashkit_has_algorithm(ALGORITHM[name]):
        pytest.skip(f"this libhashkit is built without {name}")
    rnd = random.Random(name)
    for _ in range(2000):
        key = bytes(rnd.randrange(256) for _ in range(rnd.randrange(60)))
        assert HASHES[name](key) == lib.libhashkit_digest(key, len(key), ALGORITHM[name]), key


def test_every_hash_name_has_a_function():
    """Every name --hash accepts has its function, in libhashkit's order."""
    assert tuple(HASHES) == HASH_NAMES
