"""The core contract, in-process against a real memcached: exact bytes, flags
and expiry; keys; --add/--replace; many files; buffering."""

import os
import shutil
import subprocess

import pytest

from conftest import text_command, text_get, ttl
from helpers import run


@pytest.fixture
def files(tmp_path):
    """A few files: small text, 200 KiB of incompressible and of compressible bytes."""
    small = tmp_path / "h.txt"
    small.write_bytes(b"hello")
    noise = tmp_path / "noise.bin"
    noise.write_bytes(os.urandom(200 * 1024))
    zeros = tmp_path / "zeros.css"
    zeros.write_bytes(b"a{}" * 50000)
    return small, noise, zeros


def test_bytes_flags_expiry_exact(memcached, files, capsys):
    """Stored value == file bytes, flags 0 and no expiry by default (no pickle, zlib or flag 16)."""
    code, out, err = run(capsys, f"--servers={memcached.address}", *map(str, files))
    assert (code, out, err) == (0, "", "")
    for path in files:
        assert text_get(memcached, path.name.encode()) == (0, path.read_bytes())
        assert ttl(memcached, path.name.encode()) == -1


@pytest.mark.parametrize("flags", ["0", "1", "16", "4294967295"])
def test_flags_full_range(memcached, files, capsys, flags):
    """--flag N is stored exactly, over the whole 32-bit range."""
    code, out, err = run(capsys, "-s", memcached.address, "--flag", flags, str(files[2]))
    assert (code, out, err) == (0, "", "")
    assert text_get(memcached, b"zeros.css") == (int(flags), files[2].read_bytes())


def test_flags_short_and_long_spellings(memcached, files, capsys):
    """-F, --flag and --flags all set the flags; -e/--expire sets the expiry."""
    for option in ("-F7", "--flag=7", "--flags=7"):
        assert run(capsys, "-s", memcached.address, option, "-e", "300", str(files[0])) == (0, "", "")
        assert text_get(memcached, b"h.txt") == (7, b"hello")
        assert 295 <= ttl(memcached, b"h.txt") <= 300


def test_key_option(memcached, files, capsys):
    """--key stores the single FILE under KEY (the dash loop's form)."""
    code, out, err = run(capsys, "--key=/img/a.gif", "--servers=" + memcached.address, str(files[1]))
    assert (code, out, err) == (0, "", "")
    assert text_get(memcached, b"/img/a.gif") == (0, files[1].read_bytes())


def test_key_with_two_files_is_usage_error(memcached, files, capsys):
    """--key with more than one FILE is a usage error (exit 2) and stores nothing."""
    code, out, err = run(capsys, "--key=k", "-s", memcached.address, str(files[0]), str(files[1]))
    assert (code, out) == (2, "")
    assert err == "memccp: --key names one file, 2 given\n"
    assert text_get(memcached, b"k") is None


def test_key_modes(memcached, tmp_path, capsys, monkeypatch):
    """-. (basename, default), -+ (as given) and -/ (real path) choose the key like C memccp."""
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f.txt").write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    keys = {"-.": b"f.txt", "-+": b"d/f.txt", "-/": os.fsencode(tmp_path / "d/f.txt"),
            "--relative": b"d/f.txt"}
    for option, key in keys.items():
        text_command(memcached, b"flush_all")
        assert run(capsys, "-s", memcached.address, option, "d/f.txt") == (0, "", "")
        assert text_get(memcached, key) == (0, b"x")
        assert [k for k in set(keys.values()) - {key} if text_get(memcached, k)] == []


def test_non_utf8_file_name(memcached, tmp_path, capsys):
    """A file whose name is not UTF-8 is stored under its name's exact bytes."""
    path = os.path.join(os.fsencode(tmp_path), b"caf\xe9.txt")
    with open(path, "wb") as handle:
        handle.write(b"latin-1 name")
    code, out, err = run(capsys, "-v", "-s", memcached.address, os.fsdecode(path))
    assert (code, out) == (0, "caf\\xe9.txt\n")
    assert err == "memccp: 1 file, 1 stored (12 bytes), 0 failed\n"
    assert text_get(memcached, b"caf\xe9.txt") == (0, b"latin-1 name")


def test_verbose_prints_each_key(memcached, files, capsys):
    """-v prints each stored key on stdout (as C memccp) and a summary on stderr."""
    code, out, err = run(capsys, "-v", "-s", memcached.address, *map(str, files))
    assert code == 0
    assert out == "h.txt\nnoise.bin\nzeros.css\n"
    assert err == f"memccp: 3 files, 3 stored ({sum(f.stat().st_size for f in files)} bytes), 0 failed\n"


def test_add_existing_and_replace_missing(memcached, files, capsys):
    """--add on an existing key and --replace on a missing one name the key and exit 1."""
    assert run(capsys, "-s", memcached.address, str(files[0])) == (0, "", "")
    code, out, err = run(capsys, "-s", memcached.address, "--add", str(files[0]), str(files[1]))
    assert (code, out) == (1, "")
    assert err == f"memccp: {files[0]}: key 'h.txt' already exists (--add stores only new keys)\n"
    assert text_get(memcached, b"noise.bin") == (0, files[1].read_bytes())
    code, out, err = run(capsys, "-s", memcached.address, "-R", "--key=missing", str(files[0]))
    assert (code, out) == (1, "")
    assert err == (f"memccp: {files[0]}: key 'missing' does not exist "
                   "(--replace changes only existing keys)\n")
    assert run(capsys, "-s", memcached.address, "-R", "-F", "3", str(files[0])) == (0, "", "")
    assert text_get(memcached, b"h.txt") == (3, b"hello")


def test_last_mode_wins(memcached, files, capsys):
    """As in C memccp, the last of -S/-A/-R wins: -A -S overwrites, -S -A does not."""
    text_command(memcached, b"set h.txt 0 0 3\r\nold", one_line=True)
    assert run(capsys, "-s", memcached.address, "-F", "1", "-A", "-S", str(files[0])) == (0, "", "")
    assert text_get(memcached, b"h.txt") == (1, b"hello")
    code, out, err = run(capsys, "-s", memcached.address, "-F", "2", "-S", "-A", str(files[0]))
    assert (code, out) == (1, "")
    assert err == f"memccp: {files[0]}: key 'h.txt' already exists (--add stores only new keys)\n"
    assert text_get(memcached, b"h.txt") == (1, b"hello")


def test_buffered_same_result(memcached, files, tmp_path, capsys):
    """-B pipelines the stores yet gives the same items, flags and errors."""
    missing = tmp_path / "missing"
    code, out, err = run(capsys, "-B", "-F", "9", "-s", memcached.address, str(files[0]), str(missing),
                         str(files[1]), str(files[2]))
    assert (code, out) == (1, "")
    assert err == f"memccp: {missing}: No such file or directory\n"
    for path in files:
        assert text_get(memcached, path.name.encode()) == (9, path.read_bytes())


def test_buffered_add_reports_each_existing_key(memcached, files, capsys):
    """-B --add names every key that already existed and stores the others."""
    assert run(capsys, "-s", memcached.address, str(files[0]), str(files[2])) == (0, "", "")
    code, out, err = run(capsys, "-B", "-A", "-s", memcached.address, *map(str, files))
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        f"memccp: {files[0]}: key 'h.txt' already exists (--add stores only new keys)",
        f"memccp: {files[2]}: key 'zeros.css' already exists (--add stores only new keys)",
    ]
    assert text_get(memcached, b"noise.bin") == (0, files[1].read_bytes())


def test_memcached_servers_environment(memcached, files, capsys, monkeypatch):
    """MEMCACHED_SERVERS is used when --servers is not given."""
    monkeypatch.setenv("MEMCACHED_SERVERS", memcached.address)
    assert run(capsys, str(files[0])) == (0, "", "")
    assert text_get(memcached, b"h.txt") == (0, b"hello")


def test_accepted_compatibility_options(memcached, files, capsys):
    """-b, -n, -N, -H default, -q and the long forms are accepted like memcp's."""
    argv = ["-b", "-n", "-N", "--binary", "--non-blocking", "--tcp-nodelay", "-H", "MD5",
            "--hash=default", "-q", "--servers", memcached.address, str(files[0])]
    assert run(capsys, *argv) == (0, "", "")
    assert text_get(memcached, b"h.txt") == (0, b"hello")


@pytest.mark.skipif(not shutil.which("memccat"), reason="Debian's memccat is not installed")
def test_c_memccat_reads_back(memcached, files, capsys):
    """Debian's C memccat (the oracle) reads back the exact bytes and flags."""
    assert run(capsys, "-s", memcached.address, "-F", "12345", *map(str, files)) == (0, "", "")
    for path in files:
        copy = path.parent / ("back-" + path.name)
        subprocess.run(["memccat", "-s", memcached.address, f"--file={copy}", path.name],
                       capture_output=True, check=True)
        assert copy.read_bytes() == path.read_bytes()
        flag = subprocess.run(["memccat", "-s", memcached.address, "--flag", path.name],
                              capture_output=True, check=True)
        assert flag.stdout.split(b"\n", 1)[0] == b"12345"


def test_ipv6_server(tmp_path, capsys):
    """A server written [::1]:PORT is reached over IPv6."""
    from conftest import start_memcached, stop

    try:
        server = start_memcached(host="::1")
    except (OSError, RuntimeError):
        pytest.skip("no IPv6 loopback here")
    try:
        path = tmp_path / "v6.txt"
        path.write_bytes(b"six")
        assert run(capsys, "-s", f"[::1]:{server.port}", str(path)) == (0, "", "")
        assert text_get(server, b"v6.txt") == (0, b"six")
    finally:
        stop(server)
