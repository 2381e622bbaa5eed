"""The bulk path against a minimal pipelined loader, and peak memory for one 1 GiB file.

1. A tree of 50,000 files (0.1-2 KiB) and a tree of 200 files of 900 KiB, each loaded with
   `memccp --docroot=BASE -r BASE` (the thin client and its warm helper) in the binary
   protocol (auto's choice), with --protocol=text and with --protocol=meta, and with
   bench/raw_loader.py (quiet sets written straight to a socket), taking turns, 3 rounds,
   median; every load stores every file.
2. Peak RSS of memccp-py in-process (MEMCCP_HELPER=off: the measured process is the one
   that copies) storing one 1 GiB file, given by name and with -r.
Prints Markdown for docs/benchmarks.md.
"""

import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

from common import PYTHON, HERE, Memcached, peak_rss, py_client, report_goals

ROUNDS = 3
GIB = 1 << 30


def small_tree(base: str) -> int:
    rnd = random.Random(50_000)
    for i in range(50_000):
        directory = os.path.join(base, f"d{i % 100:02}")
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, f"f{i:05}.txt"), "wb") as handle:
            handle.write(rnd.randbytes(rnd.randint(100, 2048)))
    return 50_000


def large_tree(base: str) -> int:
    rnd = random.Random(200)
    for i in range(200):
        with open(os.path.join(base, f"big{i:03}.bin"), "wb") as handle:
            handle.write(rnd.randbytes(900 * 1024))
    return 200


DIALECTS = ("binary", "text", "meta")


def turns(server: Memcached, base: str, count: int) -> dict:
    """Median seconds of memccp-py in each dialect and of the raw loader on BASE, taking turns."""
    load = [py_client(), f"--servers={server.address}", f"--docroot={base}", "-r", base]
    tools = {"binary": load, "text": load + ["--protocol=text"], "meta": load + ["--protocol=meta"],
             "raw": [PYTHON, os.path.join(HERE, "raw_loader.py"), "127.0.0.1", str(server.port), base]}
    times = {name: [] for name in tools}
    for _ in range(ROUNDS):
        for name, argv in tools.items():
            server.flush()
            start = time.perf_counter()
            subprocess.run(argv, check=True)
            times[name].append(time.perf_counter() - start)
            if server.items() != count:
                sys.exit(f"error: {name} stored {server.items()} of {count} items")
    return {name: statistics.median(seconds) for name, seconds in times.items()}


def one_gib(server: Memcached) -> dict:
    """Peak RSS (MiB) of memccp-py storing one 1 GiB file (less what memcached cannot hold
    besides the item's header), by name and with -r."""
    peaks = {}
    with tempfile.TemporaryDirectory() as base:
        path = os.path.join(base, "huge.bin")
        size = GIB - (1 << 20)
        with open(path, "wb") as handle:
            chunk = random.Random(1).randbytes(1 << 20)
            for _ in range(size >> 20):
                handle.write(chunk)
        env = dict(os.environ, MEMCCP_HELPER="off")
        for name, argv in (("by name", [path]), ("-r", ["--docroot", base, "-r", base])):
            server.flush()
            _, rss, status = peak_rss([py_client(), f"--servers={server.address}", *argv], env=env)
            if status != 0 or server.items() != 1:
                sys.exit(f"error: the 1 GiB file was not stored ({name}: exit {status})")
            peaks[name] = rss
    return peaks, size


def main() -> int:
    server = Memcached(4096, "-I", "1024m")
    try:
        subprocess.run([py_client(), "--version"], check=True, stdout=subprocess.DEVNULL)
        results = []
        for label, make in (("50,000 files of 0.1-2 KiB", small_tree), ("200 files of 900 KiB", large_tree)):
            with tempfile.TemporaryDirectory() as base:
                count = make(base)
                results.append((label, turns(server, base, count)))
        peaks, size = one_gib(server)
    finally:
        server.stop()
    print(f"Bulk loads, one memcached on 127.0.0.1; median of {ROUNDS} rounds taking turns.\n")
    print("| tree | memccp-py s (binary) | text s | meta s | raw pipelined loader s | binary / raw "
          "| text / binary | meta / binary |\n|---|---:|---:|---:|---:|---:|---:|---:|")
    for label, t in results:
        print(f"| {label} | {t['binary']:.2f} | {t['text']:.2f} | {t['meta']:.2f} | {t['raw']:.2f} "
              f"| {t['binary'] / t['raw']:.2f}x | {t['text'] / t['binary']:.2f}x "
              f"| {t['meta'] / t['binary']:.2f}x |")
    print(f"\n| one file of {size / GIB:.3f} GiB | peak RSS MiB | x the file |\n|---|---:|---:|")
    for name, rss in peaks.items():
        print(f"| memccp-py, {name} | {rss:,.0f} | {rss * 2**20 / size:.2f}x |")
    (_, small), (_, large) = results
    goals = [("50,000 small files within 1.2x of the raw loader", small["binary"] <= 1.2 * small["raw"]),
             ("200 files of 900 KiB within 1.5x of the raw loader",
              large["binary"] <= 1.5 * large["raw"])]
    goals += [(f"{dialect}: {label} within 1.2x of binary", times[dialect] <= 1.2 * times["binary"])
              for dialect in DIALECTS[1:] for label, times in results]
    goals.append(("peak memory for 1 GiB at most 1.2x the file",
                  max(peaks.values()) * 2**20 <= 1.2 * size))
    return report_goals(goals)


if __name__ == "__main__":
    sys.exit(main())
