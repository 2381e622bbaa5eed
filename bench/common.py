"""Shared bits of the benchmarks: a throwaway memcached, the commands to compare."""

import os
import shutil
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PYTHON = "/usr/bin/python3"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Memcached:
    """memcached on a free 127.0.0.1 port, with MEGABYTES of memory."""

    def __init__(self, megabytes: int = 1024, *extra: str) -> None:
        self.port = free_port()
        user = ["-u", "root"] if os.geteuid() == 0 else []
        self.process = subprocess.Popen(["memcached", "-l", "127.0.0.1", "-p", str(self.port), "-U", "0",
                                         "-m", str(megabytes), *user, *extra])
        self.address = f"127.0.0.1:{self.port}"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if self.command(b"version").startswith(b"VERSION"):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("memcached did not start")

    def command(self, line: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            sock.sendall(line + b"\r\n")
            reply = b""
            while not reply.endswith((b"END\r\n", b"OK\r\n", b"\r\n")) or reply.startswith(b"STAT") \
                    and not reply.endswith(b"END\r\n"):
                reply += sock.recv(1 << 16)
            return reply

    def items(self) -> int:
        stats = self.command(b"stats")
        for line in stats.splitlines():
            if line.startswith(b"STAT curr_items "):
                return int(line.split()[2])
        return -1

    def flush(self) -> None:
        """Empty the server, and wait until it counts no item: flush_all only marks items
        dead, and curr_items falls as the LRU crawler reclaims them."""
        self.command(b"flush_all")
        deadline = time.monotonic() + 30
        while self.items() > 0:
            if time.monotonic() > deadline:
                sys.exit(f"error: memcached still counts {self.items()} items after flush_all")
            self.command(b"lru_crawler crawl all")
            time.sleep(0.05)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()


def c_memccp() -> str:
    """Debian's C memccp (diverted aside when memccp-py is installed), or exit."""
    for name in ("memccp.libmemcached-tools", "memccp"):
        path = shutil.which(name)
        if path and "libmemcached" in subprocess.run([path, "--version"], capture_output=True,
                                                     text=True).stdout:
            return path
    sys.exit("the C memccp of libmemcached-tools is not installed")


def py_memccp() -> list:
    """The installed memccp-py if there is one, else this checkout run with Debian's python."""
    path = shutil.which("memccp")
    if path and "memccp-py" in subprocess.run([path, "--version"], capture_output=True, text=True).stdout:
        return [path]
    return [PYTHON, os.path.join(ROOT, "bench", "run_checkout.py")]


def py_client() -> str:
    """memccp-py's command for loops (the thin client and its warm helper): this checkout's
    bin/memccp (it finds its own memccp_py), as installed by the package too."""
    return os.path.join(ROOT, "bin", "memccp")


def peak_rss(argv, **kwargs):
    """Run ARGV; return (seconds, peak RSS of the process in MiB, exit status)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, **kwargs)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - start, usage.ru_maxrss / 1024, proc.returncode


def timed(argv, repeat: int = 1, **kwargs) -> float:
    """Best wall time of *repeat* runs of *argv*, in seconds (checked for success)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, **kwargs)
        best = min(best, time.perf_counter() - start)
    return best


def report_goals(goals) -> int:
    """Print each (goal, met) as '- met: ...' or '- NOT MET: ...'; 1 if any is missed."""
    print("\n" + "\n".join(f"- {'met' if ok else 'NOT MET'}: {goal}" for goal, ok in goals))
    return 0 if all(ok for _, ok in goals) else 1
