"""Through twemproxy (nutcracker), which speaks only the text protocol and answers no
statistics: memccp-py (auto and --protocol=text) and the C memccp store there, memccat and
--verify read back there; a backend down fails only the files it would hold."""

import os
import subprocess

import pytest

from conftest import dump_items, stop, text_command
from helpers import run
from test_differential import c_memccp

PATHS = ["unbuffered", "pipelined"]
MEMCCAT = "/usr/bin/memccat"


def buffering(path):
    return ["-B"] if path == "pipelined" else []


def notes(proxy, protocol):
    """The -v lines memccp says about the proxy (what auto chose, no statistics)."""
    at = f"memccp: server {proxy.address}"
    chosen = (f"{at} rejects the binary protocol (it closed the connection at the first "
              "binary request): speaking text to it\n") if protocol == "auto" else ""
    return chosen + f"{at} answers no statistics (a proxy?): evictions and item sizes there are unknown\n"


@pytest.fixture
def files(tmp_path):
    """Twelve files with bytes a text client must carry exactly (NUL, CR LF)."""
    paths = []
    for i in range(12):
        path = tmp_path / f"p{i:02}.bin"
        path.write_bytes(b"file %d\x00\r\nEND\r\n" % i)
        paths.append(str(path))
    return paths


def held(proxy):
    """Every item of every backend, and how many backends hold any."""
    items, used = {}, 0
    for backend in proxy.backends:
        found = dump_items(backend)
        used += bool(found)
        items.update(found)
    return items, used


def expected(paths, flags=0):
    return {os.path.basename(p).encode(): (flags, open(p, "rb").read(), -1) for p in paths}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("protocol", ["auto", "text"])
def test_store_and_verify_through_twemproxy(twemproxy, files, capsys, protocol, path):
    """memccp -v --verify through twemproxy: the notes (auto: binary rejected; no statistics),
    every key listed, 0 missing; both backends hold their share, exact; exit 0."""
    code, out, err = run(capsys, *buffering(path), "-v", "--verify", f"--protocol={protocol}",
                         "-F", "77", "-s", twemproxy.address, *files)
    size = sum(os.path.getsize(p) for p in files)
    assert (code, out) == (0, "".join(os.path.basename(p) + "\n" for p in files))
    assert err == notes(twemproxy, protocol) + (
        f"memccp: 12 files, 12 stored ({size} bytes), 0 failed\n"
        "memccp: verified 12 items, 0 missing or different\n")
    assert held(twemproxy) == (expected(files, 77), 2)


def test_memccat_reads_back_through_twemproxy(twemproxy, files, capsys):
    """What memccp stores through twemproxy, memccat reads back through it byte for byte."""
    if not os.path.exists(MEMCCAT):
        pytest.skip("memccat (libmemcached-tools) is not installed")
    assert run(capsys, "-s", twemproxy.address, *files) == (0, "", "")
    for p in files:
        got = subprocess.run([MEMCCAT, f"--servers={twemproxy.address}", os.path.basename(p)],
                             capture_output=True, timeout=30)
        # memccat ends each value with a newline of its own
        assert (got.returncode, got.stdout, got.stderr) == (0, open(p, "rb").read() + b"\n", b"")


def test_c_memccp_stores_through_twemproxy(twemproxy, files, capsys):
    """Debian's C memccp stores through twemproxy too; memccp-py --verify finds every item."""
    program = c_memccp()  # looked up now: installing memccp-py moves it aside
    if not program:
        pytest.skip("Debian's C memccp (libmemcached-tools) is not installed")
    done = subprocess.run([program, f"--servers={twemproxy.address}", "--flag=5", *files],
                          capture_output=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, b"", b"")
    assert held(twemproxy) == (expected(files, 5), 2)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("protocol", ["auto", "text"])
@pytest.mark.parametrize("down", [0, 1], ids=["first backend down", "second backend down"])
def test_backend_down_fails_only_its_files(twemproxy, files, capsys, protocol, down, path):
    """One backend down behind twemproxy (also the one auto's 'version' reaches): the files
    placed there fail each with twemproxy's 'SERVER_ERROR Connection refused'; the other
    backend gets its files; exit 1."""
    assert run(capsys, "--protocol=text", "-s", twemproxy.address, *files) == (0, "", "")
    dead = {os.fsdecode(k) for k in dump_items(twemproxy.backends[down])}
    failed = [p for p in files if os.path.basename(p) in dead]
    good = [p for p in files if p not in failed]
    assert failed and good
    for backend in twemproxy.backends:
        text_command(backend, b"flush_all")
    stop(twemproxy.backends[down])
    code, out, err = run(capsys, *buffering(path), "-v", f"--protocol={protocol}",
                         "-s", twemproxy.address, *files)
    size = sum(os.path.getsize(p) for p in good)
    assert (code, out) == (1, "".join(os.path.basename(p) + "\n" for p in good))
    assert err == notes(twemproxy, protocol) + "".join(
        f"memccp: {p}: the server answered: Connection refused\n" for p in failed) + (
        f"memccp: 12 files, {len(good)} stored ({size} bytes), {len(failed)} failed\n")
    assert dump_items(twemproxy.backends[1 - down]) == expected(good)

