"""Bad input and failing servers: a one-line message naming the file or
server, the other files still copied, a non-zero exit, never a traceback."""

import gzip
import os
import socket

import pytest

from conftest import NO_SERVER, free_port, start_memcached, stop, text_command, text_get
from helpers import run


@pytest.fixture
def good(tmp_path):
    path = tmp_path / "good.txt"
    path.write_bytes(b"good")
    return path


def test_missing_file_and_directory(memcached, good, tmp_path, capsys):
    """A missing file and a directory are named; the good file is still stored; exit 1."""
    missing, directory = tmp_path / "missing.gif", tmp_path / "dir"
    directory.mkdir()
    code, out, err = run(capsys, "-s", memcached.address, str(missing), str(directory), str(good))
    assert (code, out) == (1, "")
    assert err == (f"memccp: {missing}: No such file or directory\n"
                   f"memccp: {directory}: Is a directory\n")
    assert text_get(memcached, b"good.txt") == (0, b"good")


def test_file_over_item_size(memcached, good, tmp_path, capsys):
    """A file over the server's item size (1 MiB by default) is named; the rest still stored."""
    big = tmp_path / "big.bin"
    big.write_bytes(b"\0" * (2 << 20))
    for extra in ([], ["-B"]):
        text_command(memcached, b"flush_all")
        code, out, err = run(capsys, *extra, "-s", memcached.address, str(big), str(good))
        assert (code, out) == (1, "")
        assert err == f"memccp: {big}: value is larger than the server's item size limit (memcached -I)\n"
        assert text_get(memcached, b"good.txt") == (0, b"good")
        assert text_get(memcached, b"big.bin") is None


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file; covered by test_unreadable_as_nobody")
def test_unreadable_file(memcached, good, tmp_path, capsys):
    """A file we may not read is named with 'Permission denied'."""
    secret = tmp_path / "secret"
    secret.write_bytes(b"x")
    secret.chmod(0)
    code, out, err = run(capsys, "-s", memcached.address, str(secret), str(good))
    assert (code, out, err) == (1, "", f"memccp: {secret}: Permission denied\n")


@pytest.mark.parametrize("key, reason", [
    ("", "empty key"),
    ("k" * 251, "key is 251 bytes long, memcached allows at most 250: '" + "k" * 251 + "'"),
])
def test_bad_keys(memcached, good, capsys, key, reason):
    """An empty or over-long key is refused for that file, with the reason."""
    code, out, err = run(capsys, "-s", memcached.address, f"--key={key}", str(good))
    assert (code, out) == (1, "")
    assert err.startswith(f"memccp: {good}: {reason}")


def test_long_file_name_does_not_stop_others(memcached, good, tmp_path, capsys):
    """A file whose name makes a key over 250 bytes is named; the other file is stored."""
    long = tmp_path / ("n" * 251)
    long.write_bytes(b"x")
    code, out, err = run(capsys, "-s", memcached.address, str(long), str(good))
    assert (code, out) == (1, "")
    assert err.startswith(f"memccp: {long}: key is 251 bytes long")
    assert text_get(memcached, b"good.txt") == (0, b"good")


def test_key_with_space_warns(memcached, good, capsys):
    """A key with a space is stored but warns that text-protocol readers cannot fetch it."""
    code, out, err = run(capsys, "-s", memcached.address, "--key=/a b.gif", str(good))
    assert (code, out) == (0, "")
    assert err.startswith(f"memccp: {good}: warning: key contains space or control bytes (0x20)")


@pytest.mark.parametrize("argv, message", [
    (["-F", "-1"], "argument -F/--flag/--flags"),
    (["--flag=-1"], "'-1' is not a number from 0 to 4294967295"),
    (["--flag=4294967296"], "'4294967296' is not a number from 0 to 4294967295"),
    (["--flag=abc"], "'abc' is not a number"),
    (["--expire=-5"], "'-5' is not a number"),
    (["--expire=99999999999"], "is not a number from 0 to 4294967295"),
    (["--hash=bogus"], "unknown hash 'bogus'"),
    (["--servers=host:port"], "bad server entry 'host:port': port must be a number"),
    (["--servers="], "no servers given"),
    (["--timeout=0"], "'0' is not a number of seconds"),
    (["--distribution=random"], "invalid choice: 'random'"),
    (["-U"], "--udp is not supported"),
])
def test_usage_errors(memcached, good, capsys, argv, message):
    """Bad numbers, names and server lists are usage errors: exit 2, nothing stored."""
    servers = [] if any(a.startswith("--servers") for a in argv) else ["-s", memcached.address]
    code, out, err = run(capsys, *servers, *argv, str(good))
    assert (code, out) == (2, "")
    assert message in err and "Traceback" not in err
    assert text_get(memcached, b"good.txt") is None


def test_no_server_and_no_file(good, capsys, monkeypatch):
    """No server list anywhere, or no file: usage errors."""
    monkeypatch.delenv("MEMCACHED_SERVERS", raising=False)
    assert run(capsys, str(good)) == (
        2, "", "memccp: no servers given: use --servers=HOST[:PORT] or set MEMCACHED_SERVERS\n")
    assert run(capsys, "-s", NO_SERVER) == (2, "", "memccp: no files given (see memccp --help)\n")


def test_server_refuses(good, tmp_path, capsys):
    """A server that refuses connections is named for every file; exit 1."""
    other = tmp_path / "other.txt"
    other.write_bytes(b"o")
    address = f"127.0.0.1:{free_port()}"
    code, out, err = run(capsys, "-s", address, str(good), str(other))
    assert (code, out) == (1, "")
    assert err == (f"memccp: {good}: server {address}: connection refused\n"
                   f"memccp: {other}: server {address}: connection refused\n")


def test_silent_server_times_out(good, capsys):
    """A server that accepts but never answers is reported after --timeout."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        address = "127.0.0.1:%d" % listener.getsockname()[1]
        code, out, err = run(capsys, "-s", address, "--timeout=0.5", str(good))
    assert (code, out) == (1, "")
    assert err == f"memccp: {good}: server {address}: no answer within 0.5 s\n"


def test_quiet_prints_only_errors(memcached, good, tmp_path, capsys):
    """-q keeps the error lines (as C memccp keeps its store errors) and silences the rest:
    -v's keys and summary, warnings; the files are still stored; exit 1."""
    spaced = tmp_path / "a b.txt"
    spaced.write_bytes(b"s")
    code, out, err = run(capsys, "-q", "-v", "-s", memcached.address, str(good), str(spaced),
                         "/nonexistent", str(good))  # good.txt twice: a warning -q silences
    assert (code, out, err) == (1, "", "memccp: /nonexistent: No such file or directory\n")
    assert text_get(memcached, b"good.txt") == (0, b"good")
    port = free_port()
    code, out, err = run(capsys, "-q", "-s", f"127.0.0.1:{port}", str(good))
    assert (code, out, err) == (1, "", f"memccp: {good}: server 127.0.0.1:{port}: connection refused\n")


def test_dead_server_every_batch_named(tmp_path, capsys):
    """With a dead server, every file of every pipelined batch is named; exit 1."""
    server = start_memcached()
    paths = []
    for i in range(300):
        path = tmp_path / f"f{i:03}"
        path.write_bytes(os.urandom(20000))
        paths.append(str(path))
    stop(server)
    code, out, err = run(capsys, "-B", "-s", f"{server.host}:{server.port}", *paths)
    assert (code, out) == (1, "")
    assert len(err.splitlines()) == 300
    assert all(f"server {server.host}:{server.port}:" in line for line in err.splitlines())


def test_unreadable_as_nobody(memcached, as_nobody):
    """Run as nobody: an unreadable file is named 'Permission denied', the readable one stored."""
    top, run_as_nobody = as_nobody
    secret, public = top / "secret.txt", top / "public.txt"
    secret.write_bytes(b"s")
    public.write_bytes(b"p")
    secret.chmod(0o600)
    public.chmod(0o644)
    result = run_as_nobody("-s", memcached.address, str(secret), str(public))
    assert (result.returncode, result.stdout, result.stderr) == (
        1, "", f"memccp: {secret}: Permission denied\n")
    assert text_get(memcached, b"public.txt") == (0, b"p")


def test_silent_unix_socket_times_out(good, tmp_path, capsys):
    """--timeout holds for unix sockets too: a socket that never answers is reported."""
    path = str(tmp_path / "silent.sock")
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(path)
        listener.listen()
        code, out, err = run(capsys, "-s", path, "--timeout=0.5", str(good))
    assert (code, out) == (1, "")
    assert err == f"memccp: {good}: server {path}: no answer within 0.5 s\n"


def test_unix_socket_server(good, tmp_path, capsys):
    """A memcached on a unix socket (memcached -s PATH) is a server like any other."""
    server = start_memcached(unix_path=str(tmp_path / "mc.sock"))
    try:
        assert run(capsys, "-v", "-s", server.address, str(good)) == (
            0, "good.txt\n", "memccp: 1 file, 1 stored (4 bytes), 0 failed\n")
        assert text_get(server, b"good.txt") == (0, b"good")
    finally:
        stop(server)

@pytest.mark.parametrize("extra", [[], ["-B"]])
def test_file_over_item_size_is_not_read(memcached, good, tmp_path, capsys, monkeypatch, extra):
    """A sparse 200 MB file meant for a 1 MiB server: named as too large without one byte
    of it read; the other file stored. With --gzip its compressed bytes are what counts."""
    sparse = tmp_path / "sparse.bin"
    with open(sparse, "wb") as handle:
        handle.truncate(200 << 20)
    asked = []
    real_read, real_readv = os.read, os.readv
    monkeypatch.setattr(os, "read", lambda fd, size: asked.append(size) or real_read(fd, size))
    monkeypatch.setattr(os, "readv", lambda fd, bufs: asked.append(sum(map(len, bufs)))
                        or real_readv(fd, bufs))
    code, out, err = run(capsys, *extra, "-s", memcached.address, str(sparse), str(good))
    assert (code, out) == (1, "")
    assert err == f"memccp: {sparse}: value is larger than the server's item size limit (memcached -I)\n"
    assert text_get(memcached, b"good.txt") == (0, b"good")
    assert max(asked) < 1 << 20  # good.txt only (and replies): never the 200 MB
    monkeypatch.setattr(os, "read", real_read)
    monkeypatch.setattr(os, "readv", real_readv)
    with open(sparse, "wb") as handle:
        handle.truncate(2 << 20)  # 2 MiB of zeros: tiny once gzip'd
    assert run(capsys, *extra, "-s", memcached.address, "--gzip=2", str(sparse)) == (0, "", "")
    flags, value = text_get(memcached, b"sparse.bin")
    assert flags == 2 and gzip.decompress(value) == bytes(2 << 20)
