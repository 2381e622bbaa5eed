"""Load test: 50,000 small files in one bulk run, with bounded memory.

Runs memccp-py once on 5,000 and once on 50,000 files (100 B - 2 KiB), reports the
wall time and peak RSS of each run (memory must not grow with the file count), and
verifies the 50,000 items one by one with pipelined text-protocol gets.
"""

import os
import random
import socket
import subprocess
import sys
import tempfile
import time

from common import Memcached, py_memccp, report_goals


def make_tree(base: str, count: int) -> dict:
    rnd = random.Random(count)
    names = {}
    for i in range(count):
        rel = f"d{i % 100:02}/f{i:05}.txt"
        path = os.path.join(base, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(rnd.randbytes(rnd.randint(100, 2048)))
        names["/" + rel] = path
    return names


def load(tool, server, base):
    """Run one bulk load in its own process (MEMCCP_HELPER=off: the memory measured is the
    copy's, not a thin client's); return (seconds, peak RSS in MiB, exit status)."""
    start = time.perf_counter()
    proc = subprocess.Popen([*tool, f"--servers={server.address}", f"--docroot={base}", "-r", base],
                            env=dict(os.environ, MEMCCP_HELPER="off"))
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - start, usage.ru_maxrss / 1024, proc.returncode


def verify(server, names: dict) -> int:
    """Fetch every key (100 a request); return how many differ from their file."""
    bad = 0
    keys = sorted(names)
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        reader = sock.makefile("rb")
        for i in range(0, len(keys), 100):
            batch = keys[i:i + 100]
            sock.sendall(b"get " + b" ".join(k.encode() for k in batch) + b"\r\n")
            got = {}
            while True:
                head = reader.readline()
                if head == b"END\r\n":
                    break
                _, key, flags, length = head.split()
                got[key.decode()] = (int(flags), reader.read(int(length) + 2)[:-2])
            for key in batch:
                with open(names[key], "rb") as handle:
                    if got.get(key) != (0, handle.read()):
                        bad += 1
    return bad


def main() -> int:
    tool = py_memccp()
    server = Memcached(megabytes=2048)
    try:
        results = []
        for count in (5_000, 50_000):
            with tempfile.TemporaryDirectory() as base:
                names = make_tree(base, count)
                server.flush()
                seconds, rss, status = load(tool, server, base)
                stored = server.items()
                bad = verify(server, names) if count == 50_000 else 0
                results.append((count, seconds, rss, status, stored, bad))
    finally:
        server.stop()
    print("| files | seconds | files/s | peak RSS MiB | exit | items stored | mismatches |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for count, seconds, rss, status, stored, bad in results:
        print(f"| {count:,} | {seconds:.2f} | {count / seconds:,.0f} | {rss:.1f} | {status} | {stored:,} | "
              f"{bad if count == 50_000 else 'n/a'} |")
    small, large = results
    return report_goals([
        ("every file stored and read back identical",
         all(r[3] == 0 and r[4] == r[0] for r in results) and large[5] == 0),
        (f"memory flat: {large[2] / small[2]:.2f}x for 10x the files (under 1.5x)",
         large[2] < small[2] * 1.5)])


if __name__ == "__main__":
    sys.exit(main())
