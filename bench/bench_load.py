"""Load one tree of 2,000 files (0.5-32 KiB) three ways, and time one invocation.

1. the users' dash loop, one C memccp process per file;
2. C memccp with all files in one process;
3. memccp-py bulk (one process, pipelined).
Then the cost of one invocation: memccp-py, C memccp, and the floor
``python3 -c 'import bmemcached'``. Prints a Markdown table for docs/benchmarks.md.
"""

import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

from common import PYTHON, Memcached, c_memccp, py_memccp, timed, report_goals

FILES = 2000


def make_tree(base: str) -> int:
    rnd = random.Random(2000)
    total = 0
    for i in range(FILES):
        directory = os.path.join(base, f"d{i % 20:02}")
        os.makedirs(directory, exist_ok=True)
        size = rnd.randint(512, 32 * 1024)
        with open(os.path.join(directory, f"img{i:04}.gif"), "wb") as handle:
            handle.write(rnd.randbytes(size))
        total += size
    return total


def invocation_ms(commands: dict, runs: int = 100) -> dict:
    """Median wall time of one run of each command, in milliseconds; the commands take turns,
    so that a slow moment of the machine weighs on all of them alike."""
    times = {name: [] for name in commands}
    for _ in range(runs):
        for name, argv in commands.items():
            start = time.perf_counter()
            subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) * 1000 for name, values in times.items()}


def main() -> int:
    c_tool, py_tool = c_memccp(), py_memccp()
    server = Memcached()
    rows = []
    try:
        with tempfile.TemporaryDirectory() as base:
            total = make_tree(base)
            servers = f"--servers={server.address}"
            loop = (f'for file in $(find {base} -type f -name "*.gif" | sed "s#{base}##"); do '
                    f'"$TOOL" --relative {servers} .$file; done')
            ways = [
                ("dash loop, C memccp (one process per file)", ["dash", "-c", f"cd {base} && {loop}"],
                 dict(env=dict(os.environ, TOOL=c_tool))),
                ("C memccp, all files in one process",
                 ["sh", "-c", f'cd {base} && "$TOOL" --relative {servers} $(find . -type f)'],
                 dict(env=dict(os.environ, TOOL=c_tool))),
                ("memccp-py bulk (--docroot -r, pipelined)",
                 [*py_tool, servers, f"--docroot={base}", "-r", base], {}),
            ]
            seconds = {}
            for name, argv, kwargs in ways:
                server.flush()
                seconds[name] = timed(argv, repeat=1 if "loop" in name else 3, **kwargs)
                stored = server.items()
                rows.append((name, seconds[name], stored))
                if stored != FILES:
                    print(f"error: {name} stored {stored} of {FILES} items", file=sys.stderr)
                    return 1
            one = os.path.join(base, "d00", "img0000.gif")
            ms = invocation_ms({"floor": [PYTHON, "-c", "import bmemcached"],
                                "py": [*py_tool, servers, one], "c": [c_tool, servers, one]})
            floor, py_one, c_one = ms["floor"], ms["py"], ms["c"]
    finally:
        server.stop()
    print(f"Tree: {FILES} files, {total / 2**20:.1f} MiB, one memcached on 127.0.0.1.\n")
    print("| way | seconds | files/s |\n|---|---:|---:|")
    for name, secs, _ in rows:
        print(f"| {name} | {secs:.2f} | {FILES / secs:,.0f} |")
    loop_s, one_s, bulk_s = (r[1] for r in rows)
    print(f"\nmemccp-py bulk vs C dash loop: {loop_s / bulk_s:.0f}x faster; "
          f"vs C one process: {one_s / bulk_s:.1f}x.\n")
    print("| one invocation (median of 100, taking turns) | ms |\n|---|---:|")
    print(f"| python3 -c 'import bmemcached' (floor) | {floor:.1f} |")
    print(f"| memccp-py, one file | {py_one:.1f} ({py_one / floor * 100 - 100:+.0f}% over the floor) |")
    print(f"| C memccp, one file | {c_one:.1f} |")
    goals = [("bulk at least as fast as C one-process", bulk_s <= one_s),
             ("bulk 20x faster than the C dash loop", loop_s / bulk_s >= 20),
             ("one invocation <= floor + 25%", py_one <= floor * 1.25)]
    return report_goals(goals)


if __name__ == "__main__":
    sys.exit(main())
