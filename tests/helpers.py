"""Small helpers shared by the tests."""

import os
import subprocess
import time
from typing import Tuple

from memccp_py.cli import main
from memccp_py.placement.cluster import Cluster
from memccp_py.placement.servers import parse_servers


def c_memccp() -> str:
    """Debian's C memccp: diverted beside memccp-py, else /usr/bin/memccp if it is C.

    By path, not by PATH: during a package build PATH may lead to the memccp being built."""
    for path in ("/usr/bin/memccp.libmemcached-tools", "/usr/bin/memccp"):
        try:
            with open(path, "rb") as handle:
                if handle.read(4) == b"\x7fELF":
                    return path
        except OSError:
            pass
    return ""


def run(capsys, *argv: str) -> Tuple[int, str, str]:
    """Run memccp in-process; return (exit status, stdout, stderr)."""
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


class About:
    """A TTL read back: equal to any value from *seconds* - 2 to *seconds* (a second may
    pass between storing and reading)."""

    def __init__(self, seconds: int) -> None:
        self.seconds = seconds

    def __eq__(self, other: object) -> bool:
        return isinstance(other, int) and self.seconds - 2 <= other <= self.seconds

    def __repr__(self) -> str:
        return f"About({self.seconds})"


def make_files(tmp_path, count, name: str = "f{:02}.txt", content: bytes = b"content of file %d"):
    """*count* small files in *tmp_path*, named *name* and holding *content*, each with its
    number (f00.txt "content of file 0", ...); their paths."""
    paths = []
    for i in range(count):
        path = tmp_path / name.format(i)
        path.write_bytes(content % i)
        paths.append(str(path))
    return paths


def placed_on(servers: str, paths, index):
    """The paths whose key (base name) the cluster places on server *index*."""
    cluster = Cluster(parse_servers(servers))
    target = cluster.connections[index]
    return [p for p in paths if cluster.route(os.fsencode(os.path.basename(p)))[0] is target]


#: Blocking system calls a process waits in for something to read, by number: x86_64, aarch64.
_WAITING_CALLS = {
    "x86_64": {0: "read", 7: "poll", 23: "select", 45: "recvfrom", 47: "recvmsg", 270: "pselect6",
               271: "ppoll"},
    "aarch64": {63: "read", 72: "pselect6", 73: "ppoll", 207: "recvfrom", 212: "recvmsg"},
}


def waiting_to_read(pid: int) -> bool:
    """Whether the main thread of process PID sleeps in a system call that waits for
    something to read (read, poll, select, recv...), as /proc/PID/stat and /proc/PID/syscall
    tell: the process is blocked, not merely on its way there."""
    import platform

    calls = _WAITING_CALLS.get(platform.machine())
    if calls is None:
        raise RuntimeError(f"no table of system calls for {platform.machine()}")
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            state = handle.read().rsplit(b")", 1)[1].split()[0]
        with open(f"/proc/{pid}/syscall", "rb") as handle:
            number = handle.read().split()[0]
    except (OSError, IndexError):
        return False
    return state == b"S" and number.isdigit() and int(number) in calls


def wait_for(condition, what: str, seconds: float = 300):
    """Poll CONDITION (a state the kernel shows, not a time) until it is true; SECONDS only
    guards against a hang: fail loudly after them rather than never end."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"waited {seconds} s in vain for {what}")


def ctrl_c_once_blocked(command: list, env: dict, fifo, blocked: str) -> Tuple[int, bytes, bytes]:
    """Run COMMAND with ``--files-from=FIFO``: COMMAND is a script that raises SIGINT in
    itself once a byte comes on the descriptor in $CONTROL. The byte is sent once the
    process waits to read (BLOCKED says on what), the FIFO still open; return (exit
    status, stdout, stderr)."""
    os.mkfifo(fifo)
    control, trigger = os.pipe()
    proc = subprocess.Popen(command + [f"--files-from={fifo}"], env=dict(env, CONTROL=str(control)),
                            pass_fds=(control,), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    os.close(control)
    try:
        with open(fifo, "w"):  # never closed until the process has ended
            wait_for(lambda: waiting_to_read(proc.pid), blocked)
            os.write(trigger, b"!")
            out, err = proc.communicate(timeout=300)  # a hang guard: it ends at once
    finally:
        os.close(trigger)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out, err
