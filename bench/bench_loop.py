"""The users' loop, one memccp process per file, with C memccp and memccp-py.

The seed's loop under dash over 500 files (0.5-32 KiB):
    for file in $(find $BASE -type f -name '*.gif' | sed "s#$BASE##"); do
        memccp --key=$file --servers=... $BASE$file; done
C memccp has no --key: it runs the same loop without it (its key is the base name).
The two take turns, 5 rounds, median; with sudo in the loop too when sudo is there;
memccp-py once more without its warm helper (MEMCCP_HELPER=off, as before it had one), and
the loop running only `python3 -I -S -c pass`, the floor for any client in Python.
Then the cost of one call (median of 100, taking turns) against `python3 -I -S -c pass`.
Prints Markdown for docs/benchmarks.md.
"""

import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from common import PYTHON, Memcached, c_memccp, py_client, report_goals

FILES, ROUNDS = 500, 5
LOOP = ('for file in $(find $BASE -type f -name "*.gif" | sed "s#$BASE##"); do '
        '$SUDO "$TOOL" $KEY --servers=$SERVER $BASE$file; done')


def make_tree(base: str) -> None:
    rnd = random.Random(500)
    for i in range(FILES):
        directory = os.path.join(base, f"d{i % 10}")
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, f"img{i:03}.gif"), "wb") as handle:
            handle.write(rnd.randbytes(rnd.randint(512, 32 * 1024)))


def run_loop(server: Memcached, base: str, tool: str, with_key: bool, sudo: bool, **env) -> float:
    server.flush()
    environment = dict(os.environ, BASE=base, TOOL=tool, SERVER=server.address,
                       KEY="--key=$file" if with_key else "", SUDO="sudo" if sudo else "", **env)
    # $KEY is expanded by the loop itself: --key=$file must see the loop's $file
    script = LOOP.replace("$KEY", "--key=$file" if with_key else "")
    start = time.perf_counter()
    subprocess.run(["dash", "-c", script], env=environment, check=True)
    seconds = time.perf_counter() - start
    if server.items() != FILES:
        sys.exit(f"error: {tool} stored {server.items()} of {FILES} items")
    return seconds


def floor_loop(base: str) -> float:
    """The same loop running only `python3 -I -S -c pass`: what any Python client costs."""
    script = LOOP.replace('$SUDO "$TOOL" $KEY --servers=$SERVER $BASE$file', f"{PYTHON} -I -S -c pass")
    start = time.perf_counter()
    subprocess.run(["dash", "-c", script], env=dict(os.environ, BASE=base), check=True)
    return time.perf_counter() - start


def wait_for_helper(tool: str, **env) -> None:
    """Start the helper and wait until it serves calls (bounded)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        proc = subprocess.run([tool, "-d"], capture_output=True, text=True, env=dict(os.environ, **env))
        if "run by the warm helper" in proc.stderr:
            return
        time.sleep(0.05)
    sys.exit("error: the warm helper did not start")


def loops(server: Memcached, base: str, c_tool: str, py_tool: str, sudo: bool) -> tuple:
    """Median seconds of C and memccp-py, taking turns."""
    times = {"c": [], "py": []}
    for _ in range(ROUNDS):
        times["c"].append(run_loop(server, base, c_tool, False, sudo))
        times["py"].append(run_loop(server, base, py_tool, True, sudo))
    return statistics.median(times["c"]), statistics.median(times["py"])


def call_ms(commands: dict, runs: int = 100) -> dict:
    """Median wall time of one run of each command in ms, the commands taking turns."""
    times = {name: [] for name in commands}
    for _ in range(runs):
        for name, (argv, env) in commands.items():
            start = time.perf_counter()
            subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           env=dict(os.environ, **env))
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) * 1000 for name, values in times.items()}


def main() -> int:
    c_tool, py_tool = c_memccp(), py_client()
    print(f"C memccp: {c_tool}; memccp-py: {py_tool}\n")
    sudo = shutil.which("sudo") is not None and os.geteuid() == 0
    server = Memcached()
    try:
        with tempfile.TemporaryDirectory() as base:
            make_tree(base)
            wait_for_helper(py_tool)
            c_s, py_s = loops(server, base, c_tool, py_tool, sudo=False)
            sudo_s = loops(server, base, c_tool, py_tool, sudo=True) if sudo else None
            off_s = run_loop(server, base, py_tool, True, False, MEMCCP_HELPER="off")
            floor_s = floor_loop(base)
            one = os.path.join(base, "d0", "img000.gif")
            servers = f"--servers={server.address}"
            ms = call_ms({"pass": ([PYTHON, "-I", "-S", "-c", "pass"], {}),
                          "py": ([py_tool, servers, one], {}),
                          "c": ([c_tool, servers, one], {}),
                          "off": ([py_tool, servers, one], {"MEMCCP_HELPER": "off"})})
    finally:
        server.stop()
    print(f"{FILES} files (0.5-32 KiB), one memcached on 127.0.0.1; median of {ROUNDS} rounds, "
          "C and memccp-py taking turns.\n")
    print("| the dash loop, one process per file | C memccp s | memccp-py s | ratio |\n|---|---:|---:|---:|")
    print(f"| `memccp --key=$file ...` | {c_s:.2f} | {py_s:.2f} | {py_s / c_s:.1f}x |")
    if sudo_s:
        print(f"| `sudo memccp --key=$file ...` | {sudo_s[0]:.2f} | {sudo_s[1]:.2f} | "
              f"{sudo_s[1] / sudo_s[0]:.1f}x |")
    print(f"| memccp-py without the helper (MEMCCP_HELPER=off) | {c_s:.2f} | {off_s:.2f} | "
          f"{off_s / c_s:.1f}x |")
    print(f"| the same loop running `python3 -I -S -c pass` (the floor) | {c_s:.2f} | {floor_s:.2f} | "
          f"{floor_s / c_s:.1f}x |")
    if not sudo:
        print("\n(sudo is not installed or this is not root: no sudo loop.)")
    print("\n| one call (median of 100, taking turns) | ms |\n|---|---:|")
    print(f"| `python3 -I -S -c pass` (the interpreter alone) | {ms['pass']:.1f} |")
    print(f"| memccp-py, warm helper | {ms['py']:.1f} (+{ms['py'] - ms['pass']:.1f} over the interpreter) |")
    print(f"| memccp-py, MEMCCP_HELPER=off | {ms['off']:.1f} |")
    print(f"| C memccp | {ms['c']:.1f} |")
    goals = [("the loop at most 3x C", py_s <= 3 * c_s)]
    if sudo_s:
        goals.append(("with sudo at most 2x C", sudo_s[1] <= 2 * sudo_s[0]))
    return report_goals(goals)


if __name__ == "__main__":
    sys.exit(main())
