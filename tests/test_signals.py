"""The command as a process: Ctrl-C, a closed stdout, a server killed mid-run."""

import errno
import os
import signal
import subprocess
import sys

import pytest

from conftest import dump_items, start_memcached, stop, text_get
from helpers import ctrl_c_once_blocked

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def memccp(*argv, **kwargs):
    """Start this checkout's memccp with Debian's python as a process."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.Popen(["/usr/bin/python3", "-m", "memccp_py", *argv], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def test_ctrl_c(memcached, tmp_path):
    """SIGINT while waiting for file names: 'interrupted', exit 130, no traceback."""
    fifo = tmp_path / "names"
    os.mkfifo(fifo)
    proc = memccp("-s", memcached.address, f"--files-from={fifo}")
    # open() returns once memccp opened the list: it is past start-up and waiting for names
    with open(fifo, "w"):  # never closed until after the signal
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=300)  # a hang guard: it ends at once
    assert (proc.returncode, out, err) == (130, b"", b"memccp: interrupted\n")
    assert dump_items(memcached) == {}


#: memccp in-process (argv: checkout, then memccp's), with a thread that, once it reads a byte
#: on descriptor CONTROL (the environment says which), sends SIGINT to itself: its handler is
#: then run (the interpreter notes it) without interrupting the main thread's system call,
#: as with a Ctrl-C that comes just before the run begins to wait.
ASIDE = """
import os, signal, sys, threading
sys.path.insert(0, sys.argv.pop(1))
from memccp_py import cli

def deliver():
    os.read(int(os.environ["CONTROL"]), 1)
    signal.pthread_kill(threading.get_ident(), signal.SIGINT)

threading.Thread(target=deliver, daemon=True).start()
sys.exit(cli.main())
"""


def test_ctrl_c_that_does_not_interrupt_the_wait_for_names(memcached, tmp_path):
    """A Ctrl-C noted while the run already waits for names, its read not interrupted: the
    run still ends at once, 'interrupted', exit 130, nothing stored."""
    command = ["/usr/bin/python3", "-c", ASIDE, ROOT, "-s", memcached.address]
    outcome = ctrl_c_once_blocked(command, dict(os.environ), tmp_path / "names", "the run to wait for names")
    assert outcome == (130, b"", b"memccp: interrupted\n")
    assert dump_items(memcached) == {}


def test_dropped_node_runs_no_python_code(tmp_path):
    """A dropped Node closes its descriptor without running Python code: a Ctrl-C raised in
    a finaliser would be printed and dropped, and the run would go on (as once it did,
    waiting for names that never came)."""
    from memccp_py.files.resolve import Scope

    node = Scope().resolve(None, str(tmp_path))
    fd, ran = node.fd, []
    sys.setprofile(lambda frame, event, arg: ran.append(frame.f_code.co_name) if event == "call" else None)
    try:
        del node
    finally:
        sys.setprofile(None)
    assert ran == []
    with pytest.raises(OSError) as closed:
        os.fstat(fd)
    assert closed.value.errno == errno.EBADF


def test_closed_stdout_keeps_copying(memcached, tmp_path):
    """-v piped into a reader that leaves: every file still stored, no error, exit 0."""
    paths = []
    for i in range(3000):
        path = tmp_path / f"p{i}"
        path.write_bytes(b"%d" % i)
        paths.append(str(path))
    reader_gone = subprocess.Popen(["true"], stdin=subprocess.PIPE)
    reader_gone.wait()
    proc = subprocess.run(["/usr/bin/python3", "-m", "memccp_py", "-v", "-s", memcached.address, *paths],
                          env=dict(os.environ, PYTHONPATH=ROOT), stdout=reader_gone.stdin,
                          stderr=subprocess.PIPE, timeout=300)
    assert proc.returncode == 0
    assert proc.stderr.startswith(b"memccp: 3000 files, 3000 stored")
    assert text_get(memcached, b"p2999") == (0, b"2999")


def test_server_killed_mid_run(tmp_path):
    """A server killed during a bulk run: each file is either confirmed (-v) or named; exit 1."""
    server = start_memcached()
    fifo = tmp_path / "names"
    os.mkfifo(fifo)
    paths = []
    for i in range(200):
        path = tmp_path / f"f{i:03}"
        path.write_bytes(os.urandom(50_000))
        paths.append(str(path))
    proc = memccp("-v", "-s", server.address, f"--files-from={fifo}")
    with open(fifo, "w") as names:
        names.write("".join(p + "\n" for p in paths[:100]))  # 5 MB: at least one batch is sent
        names.flush()
        first = proc.stdout.readline()  # a batch was confirmed
        stop(server)
        names.write("".join(p + "\n" for p in paths[100:]))
    rest = proc.stdout.read()  # (communicate() would skip what readline() buffered)
    err = proc.stderr.read()
    proc.wait(timeout=300)  # a hang guard
    confirmed = set((first + rest).decode().split())
    failed = {line.split(": ")[1] for line in err.decode().splitlines() if ": server " in line}
    assert proc.returncode == 1
    assert len(confirmed) >= 1 and len(failed) >= 100
    assert confirmed | {os.path.basename(p) for p in failed} == {os.path.basename(p) for p in paths}
    assert "Traceback" not in err.decode()
