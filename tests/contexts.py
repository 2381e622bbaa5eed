"""What the tests of the helper's worlds and callers share: runners that call memccp from
another context (a namespace, a chroot, other capabilities, limits...), a direct call of the
client to a given helper, and slow calls (names through a pipe, stored in batches)."""

import ast
import ctypes
import errno
import os
import resource
import shutil
import signal
import subprocess
import threading
import uuid

import pytest

from conftest import MEMCACHED, dump_items, text_command, text_get
from memccp_py.copier import BATCH_ITEMS
from test_helper import ROOT, SERVED, Memccp, alive, result, runtime_dir, wait_for


TESTS = os.path.dirname(os.path.abspath(__file__))
FULL_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
NSENTER = shutil.which("nsenter", path=FULL_PATH)
UNSHARE = shutil.which("unshare", path=FULL_PATH)
CHROOT = shutil.which("chroot", path=FULL_PATH)
SETPRIV = shutil.which("setpriv", path=FULL_PATH)
IP = shutil.which("ip", path=FULL_PATH)
STARTING = "memccp: debug: run in-process (no helper took the call; one is starting)"
REFUSED = "memccp: debug: run in-process (the helper did not take the call: {})"
MIXED = "memccp: debug: run in-process (set-user-ID or set-group-ID: no helper serves mixed ids)"
BACKGROUND = "a background job whose standard input is its terminal"
OFF = "memccp: debug: run in-process (MEMCCP_HELPER=off)"

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

#: A client calling a helper directly: prints via_helper's answer and the reason it was given.
#: argv: checkout, socket directory, helper name, then the call's own arguments.
DIRECT = ("import sys; sys.path.insert(0, sys.argv.pop(1)); from memccp_py.warm import client; "
          "why = []; print(client.via_helper(sys.argv.pop(1).encode(), "
          "sys.argv.pop(1).encode(), why), [reason for _, reason in why])")
#: The name of the helper of the context this snippet runs in (argv: checkout).
NAME = ("import sys; sys.path.insert(0, sys.argv[1]); from memccp_py.warm import context; "
        "print(context.helper_name(context.context()[0]).decode())")


class Within(Memccp):
    """bin/memccp (helper on, unless mode says otherwise) run in another context: through
    PREFIX (nsenter, chroot, setpriv, unshare...) and/or PREEXEC (run in the child)."""

    def __init__(self, runtime, prefix=(), preexec=None, mode: str = "helper") -> None:
        super().__init__(mode, runtime, idle="30")
        self.prefix, self.preexec = list(prefix), preexec
        self._name = None

    def _run(self, argv, **kwargs) -> subprocess.CompletedProcess:
        if "stdout" not in kwargs and "stderr" not in kwargs:
            kwargs["capture_output"] = True
        kwargs.setdefault("env", self.env())
        kwargs.setdefault("timeout", 300)
        return subprocess.run([*self.prefix, *argv], preexec_fn=self.preexec, **kwargs)

    def __call__(self, *argv, env=None, **kwargs) -> subprocess.CompletedProcess:
        return self._run([self.bin, *argv], env=env or self.env(), **kwargs)

    def name(self) -> str:
        """The helper name a client computes in this context."""
        if self._name is None:
            proc = self._run(["/usr/bin/python3", "-IS", "-c", NAME, ROOT], env={"PATH": "/usr/bin:/bin"})
            assert (proc.returncode, proc.stderr) == (0, b""), proc
            self._name = proc.stdout.decode().strip()
        return self._name

    def path(self, what: str) -> str:
        """This context's helper's file: its own name's, else (the context that came first
        has it) the installation's."""
        own = os.path.join(self.directory, f"{what}.{self.name()}")
        return own if os.path.exists(own) else super().path(what)

    def direct(self, name: str, *argv) -> tuple:
        """via_helper from this context to the helper NAME: (status, stdout, stderr)."""
        return result(self._run(["/usr/bin/python3", "-IS", "-c", DIRECT, ROOT, self.directory, name, *argv],
                                env={"PATH": "/usr/bin:/bin"}))


def helper_name(runner) -> str:
    return os.path.basename(runner.path("socket"))[len("socket."):]


def refused(runner, name: str, *argv, times: int = 3) -> list:
    """What via_helper from RUNNER's context to the helper NAME gives, TIMES over (the
    reason must come every time, whoever is quicker: the client sending or the worker
    refusing)."""
    return [runner.direct(name, *argv) for _ in range(times)]


def stop_all(directory: str) -> None:
    """End every helper that left its lock in DIRECTORY (each context's): only a process
    named memccp-helper that serves this very directory (its command line says so)."""
    if not os.path.isdir(directory):
        return
    pids = []
    for entry in os.listdir(directory):
        if not entry.startswith("lock."):
            continue
        try:
            with open(os.path.join(directory, entry)) as lock:
                pid = int(lock.read().strip() or 0)
            with open(f"/proc/{pid}/comm", "rb") as comm, open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                ours = comm.read().strip() == b"memccp-helper" and repr(directory).encode() in cmdline.read()
        except (OSError, ValueError):
            continue
        if ours:
            os.kill(pid, signal.SIGTERM)
            pids.append(pid)
    for pid in pids:
        wait_for(lambda: not alive(pid), f"helper {pid} to end")


@pytest.fixture
def main(tmp_path):
    """The helper runner of this test's own context (none started yet); at the end every
    helper of the runtime directory, whatever its context, is stopped."""
    runner = Memccp("helper", runtime_dir(tmp_path / "run"), idle="30")
    yield runner
    stop_all(runner.directory)


def _within(read, seconds: float, what: str) -> bytes:
    """What READ() returns, failing after SECONDS (saying what did not come) rather than hanging."""
    box = []
    reader = threading.Thread(target=lambda: box.append(read()), daemon=True)
    reader.start()
    reader.join(seconds)
    assert box, f"{what} within {seconds} s"
    return box[0]


def read_line(stream, seconds: float = 300) -> bytes:
    """One line from STREAM, failing after SECONDS rather than hanging."""
    return _within(stream.readline, seconds, "no line")


def read_rest(stream, seconds: float = 300) -> bytes:
    """Everything left on STREAM up to its end (EOF), failing after SECONDS."""
    return _within(stream.read, seconds, "no end of file (some process still holds the pipe)")


def worker_of(line: bytes) -> int:
    text = line.decode()
    assert text.startswith(SERVED), text
    return int(text.rsplit(" ", 1)[1].rstrip(")\n"))


def first_line(proc) -> str:
    return proc.stderr.decode().split("\n", 1)[0]


def holder(script: str, *args: str) -> subprocess.Popen:
    """`unshare -m sh -c SCRIPT` that prints ready once set up, then sleeps: its mount
    namespace stays for nsenter to enter."""
    proc = subprocess.Popen([UNSHARE, "-m", "sh", "-c", script + ' && echo ready && exec sleep 600', *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = read_line(proc.stdout)
    if line != b"ready\n":
        proc.kill()
        proc.wait(300)
        pytest.skip(f"cannot set up the mount namespace: {proc.stderr.read().decode().strip()}")
    return proc


def end(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait(300)



def memcached_flush(server) -> None:
    assert text_command(server, b"flush_all") == b"OK\r\n"



# --- a slow call: names through a pipe, stored in batches of 1000 -----------------------------

BATCH = BATCH_ITEMS  # names read from a list are stored once this many came (or at its end)


def many_files(tmp_path, count: int, prefix: str = "n") -> list:
    folder = tmp_path / "many"
    folder.mkdir(exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"{prefix}{i:04}"
        path.write_bytes(b"%d" % i)
        paths.append(path)
    return paths


def names(paths) -> bytes:
    return b"".join(b"%s\n" % os.fsencode(p) for p in paths)


def expected_items(paths) -> dict:
    return {os.fsencode(p.name): (0, p.read_bytes(), -1) for p in paths}
