"""The command as a process: Ctrl-C, a closed stdout, a server killed mid-run."""

import os
import signal
import subprocess

from conftest import start_memcached, stop, text_get

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
        out, err = proc.communicate(timeout=10)
    assert (proc.returncode, out, err) == (130, b"", b"memccp: interrupted\n")


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
                          stderr=subprocess.PIPE, timeout=60)
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
    proc.wait(timeout=30)
    confirmed = set((first + rest).decode().split())
    failed = {line.split(": ")[1] for line in err.decode().splitlines() if ": server " in line}
    assert proc.returncode == 1
    assert len(confirmed) >= 1 and len(failed) >= 100
    assert confirmed | {os.path.basename(p) for p in failed} == {os.path.basename(p) for p in paths}
    assert "Traceback" not in err.decode()
