"""Output streams that fail: a closed or full stdout or stderr never stops the copy
and never prints a traceback (memccp run as a process from this checkout)."""

import os
import subprocess

from conftest import text_get
from helpers import make_files

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def memccp_with(redirect: str, *argv: str) -> subprocess.CompletedProcess:
    """Run this checkout's memccp under sh with *redirect* (e.g. '>&-') applied."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run(["/bin/sh", "-c", f'exec "$@" {redirect}', "sh", "/usr/bin/python3",
                           "-m", "memccp_py", *argv], env=env, capture_output=True, timeout=300)


def files(tmp_path, count):
    """o0000, o0001... holding their numbers ("0", "1"...): the byte counts below add them up."""
    return make_files(tmp_path, count, name="o{:04}", content=b"%d")


def all_stored(memcached, paths):
    return all(text_get(memcached, os.path.basename(p).encode()) == (0, open(p, "rb").read())
               for p in paths)


def test_closed_stdout(memcached, tmp_path):
    """stdout closed (>&-) with -v: every file stored, the summary on stderr, exit 0."""
    paths = files(tmp_path, 50)
    result = memccp_with(">&-", "-v", "-s", memcached.address, *paths)
    assert (result.returncode, result.stdout, result.stderr) == (
        0, b"", b"memccp: 50 files, 50 stored (90 bytes), 0 failed\n")
    assert all_stored(memcached, paths)


def test_full_stdout(memcached, tmp_path):
    """-v >/dev/full: one line says so, every one of 2,000 files is still stored, exit 0."""
    paths = files(tmp_path, 2000)
    result = memccp_with(">/dev/full", "-v", "-s", memcached.address, *paths)
    assert (result.returncode, result.stdout) == (0, b"")
    assert result.stderr == (b"memccp: standard output: No space left on device (the copy goes on)\n"
                             b"memccp: 2000 files, 2000 stored (6890 bytes), 0 failed\n")
    assert all_stored(memcached, paths)


def test_full_stderr(memcached, tmp_path):
    """2>/dev/full with a missing file: the other files stored and listed, exit 1."""
    paths = files(tmp_path, 20)
    missing = str(tmp_path / "missing")
    result = memccp_with("2>/dev/full", "-v", "-B", "-s", memcached.address, missing, *paths)
    assert (result.returncode, result.stderr) == (1, b"")
    assert result.stdout == b"".join(os.path.basename(p).encode() + b"\n" for p in paths)
    assert all_stored(memcached, paths)


def test_closed_stderr(memcached, tmp_path):
    """2>&- with a missing file: the other files stored and listed, exit 1."""
    paths = files(tmp_path, 20)
    missing = str(tmp_path / "missing")
    result = memccp_with("2>&-", "-v", "-s", memcached.address, missing, *paths)
    assert (result.returncode, result.stderr) == (1, b"")
    assert result.stdout == b"".join(os.path.basename(p).encode() + b"\n" for p in paths)
    assert all_stored(memcached, paths)


def test_help_and_version_without_stdout():
    """--help and --version with stdout closed (>&-) go to stderr, as argparse does, exit 0."""
    for option, start in (("--help", b"usage: memccp "), ("--version", b"memccp v")):
        result = memccp_with(">&-", option)
        assert (result.returncode, result.stdout) == (0, b""), option
        assert result.stderr.startswith(start), option


def test_help_and_version_to_a_full_disk():
    """--help and --version >/dev/full: one line says so, no traceback, exit 1."""
    for option in ("--help", "--version"):
        result = memccp_with(">/dev/full", option)
        assert (result.returncode, result.stdout, result.stderr) == (
            1, b"", b"memccp: standard output: No space left on device\n"), option


def test_usage_error_without_stderr():
    """A usage error with stderr closed or full still exits 2, the usage error's status."""
    for redirect in ("2>&-", "2>/dev/full"):
        result = memccp_with(redirect, "--bogus")
        assert (result.returncode, result.stdout) == (2, b""), redirect
