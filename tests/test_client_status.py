"""The thin client's copy of the exit statuses it needs (it does not import
memccp_py/status.py, which would slow every call)."""

import signal
import subprocess

from memccp_py.status import ExitStatus
from memccp_py.warm import client


def test_client_statuses_are_exit_statuses():
    """The client's internal-error and killed-by-a-signal statuses are ExitStatus's."""
    assert client.INTERNAL == ExitStatus.INTERNAL
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        assert client.signalled(signum) == ExitStatus.signalled(signum)


def test_client_loads_only_built_in_modules():
    """Loaded as bin/memccp loads it, the client imports no module that is not built in."""
    code = ("import sys; before = set(sys.modules); "
            "spec = sys.modules['_frozen_importlib_external'].spec_from_file_location('client', sys.argv[1]); "
            "module = sys.modules['_frozen_importlib'].module_from_spec(spec); spec.loader.exec_module(module); "
            "print(' '.join(sorted(name for name in set(sys.modules) - before "
            "if name != 'client' and name not in sys.builtin_module_names)))")
    loaded = subprocess.run(["/usr/bin/python3", "-I", "-S", "-c", code, client.__file__],
                            capture_output=True, text=True, check=True).stdout.split()
    assert loaded == []
