"""Differential test: the same command lines through Debian's C memccp and memccp-py, each
against fresh memcached servers; stored keys, values, flags, TTLs and exit statuses must be
the same, but for the documented differences listed (with their reason) in ALLOWED. A new
difference fails; so does an allowed one that went away (update the list and the manual)."""

import os
import socket
import subprocess
import sys

import pytest

from conftest import dump_items, free_port, start_memcached, stop
from helpers import c_memccp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


C_MEMCCP = c_memccp()
pytestmark = pytest.mark.skipif(not C_MEMCCP, reason="Debian's C memccp (libmemcached-tools) "
                                                      "is not installed")

# Each case: argv ({S} all servers, {S1} the first, {SOCK} the unix socket server), and
# what it needs: servers (count), "socket", "stdin" bytes, "env", "preload" (key: value
# stored on every server first).
CASES = {
    "one file": (["-s", "{S}", "a.txt"], {}),
    "several files": (["-s", "{S}", "a.txt", "b.txt", "sub/c.gif"], {}),
    "option between files": (["a.txt", "-s", "{S}", "b.txt"], {}),
    "flags between files": (["-s", "{S}", "a.txt", "-F", "5", "b.txt"], {}),
    "flags": (["-s", "{S}", "-F", "123", "a.txt"], {}),
    "flags max": (["-s", "{S}", "--flags=4294967295", "a.txt"], {}),
    "flag abbreviated": (["-s", "{S}", "--fla=9", "a.txt"], {}),
    "flags hex": (["-s", "{S}", "-F", "0x10", "a.txt"], {}),
    "flags trailing junk": (["-s", "{S}", "-F", "12abc", "a.txt"], {}),
    "expire": (["-s", "{S}", "-e", "100", "a.txt"], {}),
    "expire abbreviated": (["-s", "{S}", "--e=60", "a.txt"], {}),
    "set": (["-s", "{S}", "-S", "a.txt"], {"preload": {b"a.txt": b"old"}}),
    "add new": (["-s", "{S}", "-A", "a.txt"], {}),
    "add existing": (["-s", "{S}", "-A", "a.txt", "b.txt"], {"preload": {b"a.txt": b"old"}}),
    "replace missing": (["-s", "{S}", "-R", "a.txt"], {}),
    "replace existing": (["-s", "{S}", "--replace", "a.txt"], {"preload": {b"a.txt": b"old"}}),
    "last of -A -S wins": (["-s", "{S}", "-A", "-S", "a.txt"], {"preload": {b"a.txt": b"old"}}),
    "basename": (["-s", "{S}", "-.", "sub/c.gif"], {}),
    "relative": (["-s", "{S}", "-+", "sub/c.gif"], {}),
    "absolute": (["-s", "{S}", "-/", "sub/c.gif"], {}),
    "relative then basename": (["-s", "{S}", "-+", "-.", "sub/c.gif"], {}),
    "absolute then relative": (["-s", "{S}", "-/", "-+", "sub/c.gif"], {}),
    "basename then absolute": (["-s", "{S}", "-.", "-/", "sub/c.gif"], {}),
    "basename abbreviated --ba": (["-s", "{S}", "--ba", "sub/c.gif"], {}),
    "--base is --basename": (["-s", "{S}", "--base", "sub/c.gif"], {}),
    "relative abbreviated": (["-s", "{S}", "--rel", "sub/c.gif"], {}),
    "buffer": (["-s", "{S}", "-B", "a.txt", "b.txt", "big.bin"], {}),
    "binary": (["-s", "{S}", "-b", "a.txt"], {}),
    "non-blocking, nodelay": (["-s", "{S}", "-n", "-N", "a.txt"], {}),
    "verbose": (["-s", "{S}", "-v", "a.txt"], {}),
    "quiet": (["-s", "{S}", "-q", "a.txt", "missing.txt"], {}),
    "debug abbreviated": (["-s", "{S}", "--d", "a.txt"], {}),
    "hash md5": (["-s", "{S}", "-H", "md5", "a.txt", "b.txt"], {"servers": 2}),
    "two servers": (["-s", "{S}", "a.txt", "b.txt", "sub/c.gif", "empty.txt", "big.bin"],
                    {"servers": 2}),
    "two servers, buffered": (["-s", "{S}", "-B", "a.txt", "b.txt", "sub/c.gif"], {"servers": 2}),
    "servers separated by blanks": (["-s", "{S_BLANKS}", "a.txt", "b.txt"], {"servers": 2}),
    "trailing comma": (["-s", "{S},", "a.txt"], {}),
    "port with a plus sign": (["-s", "{S_PLUS}", "a.txt"], {}),
    "unknown hash": (["-s", "{S}", "-H", "bogus", "a.txt"], {}),
    "environment servers": (["a.txt", "b.txt"], {"env": "MEMCACHED_SERVERS"}),
    "unix socket": (["-s", "{SOCK}", "a.txt"], {"socket": True}),
    "missing file": (["-s", "{S}", "missing.txt", "a.txt"], {}),
    "empty file": (["-s", "{S}", "empty.txt"], {}),
    "large file": (["-s", "{S}", "big.bin"], {}),
    "over item size": (["-s", "{S}", "huge.bin", "a.txt"], {}),
    "directory": (["-s", "{S}", "sub", "a.txt"], {}),
    "standard input": (["-s", "{S}", "-"], {"stdin": b"piped \x00 bytes"}),
    "udp": (["-s", "{S}", "-U", "a.txt"], {}),
    "no files": (["-s", "{S}"], {}),
    "one server down": (["-s", "{S},{DOWN}", "a.txt", "b.txt", "sub/c.gif", "big.bin"], {}),
    "all options at once": (["-s", "{S}", "-v", "-B", "-b", "-n", "-N", "-F", "77", "-e", "500",
                             "-A", "-+", "-H", "crc", "a.txt", "sub/c.gif"], {"servers": 2}),
}

# Documented differences (see COMPATIBILITY in memccp(1)): case -> (what differs, reason).
# "exit": (C's status, ours); "items": the stored items differ.
ALLOWED = {
    "flags between files": ({"items": True}, "Debian's 1.1.4 applies an option only to the files "
                            "after it; memcp 1.0.x, the patched build and memccp-py to every file"),
    "flags hex": ({"exit": (0, 2), "items": True}, "C reads '0x10' as 0 (strtoul stops at x); "
                  "memccp-py refuses a number it cannot read whole: usage error"),
    "flags trailing junk": ({"exit": (0, 2), "items": True}, "C reads '12abc' as 12; memccp-py "
                            "refuses a number it cannot read whole: usage error"),
    "no files": ({"exit": (1, 2)}, "usage errors exit 2 (as argparse, GNU tools); C exits 1"),
    "udp": ({"exit": (0, 2)}, "C stores nothing over UDP and exits 0; memccp-py refuses -U "
            "with a usage error instead of failing silently"),
    "directory": ({"exit": (0, 1), "items": True}, "C stores a directory as an empty item; "
                  "memccp-py reads regular files only: 'Is a directory', exit 1"),
    "unknown hash": ({"exit": (0, 2), "items": True}, "C says it cannot find the hash and "
                     "places keys with the default one; memccp-py refuses a hash it does not "
                     "know (a typo would place keys where no reader looks): usage error"),
    "buffer": ({"exit": (1, 0), "items": True}, "C memccp -B fails a 900 KiB file (libmemcached's "
               "buffered mode); memccp-py pipelines it and stores every file"),
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """The files every case copies, in a directory the cases run in."""
    work = tmp_path_factory.mktemp("diff")
    (work / "sub").mkdir()
    files = {"a.txt": b"alpha\n", "b.txt": b"bravo", "sub/c.gif": b"GIF89a\x00\x01",
             "empty.txt": b"", "big.bin": os.urandom(900 << 10), "huge.bin": os.urandom(2 << 20)}
    for name, data in files.items():
        (work / name).write_bytes(data)
    return work


def run_side(tool: list, case: str, work) -> tuple:
    """Run one implementation of *case* against fresh servers: (exit status, items by server)."""
    argv, needs = CASES[case]
    if needs.get("socket"):
        servers = [start_memcached(unix_path=str(work / f"mc-{len(tool)}.sock"))]
    else:
        servers = [start_memcached() for _ in range(needs.get("servers", 1))]
    try:
        for server in servers:
            for key, value in needs.get("preload", {}).items():
                with socket.create_connection((server.host, server.port), timeout=300) as sock:
                    sock.sendall(b"set %s 0 0 %d\r\n%s\r\n" % (key, len(value), value))
                    assert sock.recv(100) == b"STORED\r\n"
        names = {"S": ",".join(s.address for s in servers), "S1": servers[0].address,
                 "S_BLANKS": " ".join(s.address for s in servers), "SOCK": servers[0].address,
                 "DOWN": f"127.0.0.1:{free_port()}",
                 "S_PLUS": servers[0].address.replace(":", ":+", 1)}
        env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8", "PYTHONPATH": ROOT}
        if needs.get("env"):
            env[needs["env"]] = names["S"]
        result = subprocess.run(tool + [a.format(**names) for a in argv], cwd=work, env=env,
                                input=needs.get("stdin", b""), capture_output=True, timeout=300)
        items = [{k: (f, v, t if t < 0 else "ttl>0") for k, (f, v, t) in dump_items(s).items()}
                 for s in servers]
        return result.returncode, [sorted(i.items()) for i in items]
    finally:
        for server in servers:
            stop(server)


#: How memccp-py is run against C memccp: as is (--protocol=auto), and on the text path,
#: the protocol C memccp speaks without -b. Cases asking for binary (-b) run only as is.
VARIANTS = {"auto": [], "text": ["--protocol=text"]}
RUNS = [(case, variant) for case in sorted(CASES) for variant in VARIANTS
        if variant == "auto" or "-b" not in CASES[case][0]]


@pytest.mark.parametrize("case,variant", RUNS, ids=[f"{c}-{v}" for c, v in RUNS])
def test_same_as_c_memccp(workdir, case, variant):
    """memccp-py (as is, and with --protocol=text) stores what C memccp stores, with the same
    exit status, but for ALLOWED."""
    c_status, c_items = run_side([C_MEMCCP], case, workdir)
    py_status, py_items = run_side([sys.executable, "-m", "memccp_py", *VARIANTS[variant]], case,
                                   workdir)
    seen = {}
    if c_status != py_status:
        seen["exit"] = (c_status, py_status)
    if c_items != py_items:
        seen["items"] = True
    allowed = ALLOWED.get(case, ({}, ""))[0]
    assert seen == allowed, (f"{case}: C exit {c_status}, items {c_items!r:.2000}\n"
                             f"memccp-py exit {py_status}, items {py_items!r:.2000}")
