"""Fixtures: real memcached servers on free loopback ports, and readers that
fetch items back with the text protocol (as nginx does)."""

import base64
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Callable, Dict, Iterator, List, NamedTuple, Optional, Tuple

import pytest

MEMCACHED = shutil.which("memcached") or "/usr/bin/memcached"


class Memcached(NamedTuple):
    host: str
    port: int
    process: subprocess.Popen
    path: Optional[str] = None  # a unix socket instead of host:port

    @property
    def address(self) -> str:
        return self.path or f"{self.host}:{self.port}"


def connect(server: Memcached, timeout: float = 300) -> socket.socket:
    """A connection to *server*, over TCP or its unix socket."""
    if server.path is None:
        return socket.create_connection((server.host, server.port), timeout=timeout)
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(timeout)
    try:
        sock.connect(server.path)
    except OSError:
        sock.close()
        raise
    return sock


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_until_answers(host: str, port: int, process: subprocess.Popen, seconds: float = 300,
                       path: Optional[str] = None, text: bool = False) -> None:
    """Return once memcached answers a binary-protocol NOOP (SASL servers answer it too), or
    with *text* a text-protocol ``version``; fail if it dies or stays silent."""
    question, answer = (b"version\r\n", b"VERSION") if text else (bytes([0x80, 0x0A]) + bytes(22), b"\x81")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}")
        try:
            with connect(Memcached(host, port, process, path), timeout=1) as sock:
                sock.sendall(question)
                if sock.recv(24).startswith(answer):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{process.args[0]} on {path or f'{host}:{port}'} did not answer")


def start_memcached(*extra: str, host: str = "127.0.0.1", env: Optional[dict] = None,
                    unix_path: Optional[str] = None, port: int = 0, text: bool = False) -> Memcached:
    """Start a throwaway memcached on *port* (default: a free loopback port), or on the unix
    socket *unix_path*; return once it answers (*text*: in the text protocol, for -B ascii)."""
    if not os.path.exists(MEMCACHED):
        pytest.skip("memcached is not installed")
    port = 0 if unix_path else port or free_port(host)
    user = ["-u", "root"] if os.geteuid() == 0 else []
    where = ["-s", unix_path] if unix_path else ["-l", host, "-p", str(port), "-U", "0"]
    process = subprocess.Popen([MEMCACHED, *where, *user, *extra],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env=env)
    try:
        wait_until_answers(host, port, process, path=unix_path, text=text)
    except Exception:
        process.kill()
        raise
    return Memcached(host, port, process, unix_path)


def stop(server: Memcached) -> None:
    """End a throwaway server at once (SIGTERM makes memcached linger a second)."""
    server.process.kill()
    server.process.wait(300)


#: A server address nothing answers on: where a test must not reach any memcached.
NO_SERVER = "127.0.0.1:1"


@pytest.fixture(autouse=True)
def _no_stray_servers(monkeypatch):
    """No test reaches a memcached it did not start: the environment's server list, if any,
    is replaced by an address nothing answers on (a test sets its own where it needs one)."""
    monkeypatch.setenv("MEMCACHED_SERVERS", NO_SERVER)


@pytest.fixture(scope="session")
def _shared_memcached() -> Iterator[Memcached]:
    server = start_memcached()
    yield server
    stop(server)


@pytest.fixture
def memcached(_shared_memcached: Memcached) -> Memcached:
    """A running memcached, emptied for this test."""
    text_command(_shared_memcached, b"flush_all")
    return _shared_memcached


@pytest.fixture
def as_nobody() -> Iterator[Tuple[Path, Callable[..., subprocess.CompletedProcess]]]:
    """(top, run): a directory every user may enter holding a copy of memccp_py, and
    run(*argv) running memccp from there as nobody (root with setpriv only)."""
    if os.geteuid() != 0 or not os.path.exists("/usr/bin/setpriv"):
        pytest.skip("needs root and setpriv to run memccp as nobody")
    top = Path(tempfile.mkdtemp())  # pytest's tmp_path is closed to other users
    shutil.copytree(Path(__file__).resolve().parent.parent / "memccp_py", top / "memccp_py",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for path in (top, top / "memccp_py", *(top / "memccp_py").iterdir()):
        path.chmod(0o755 if path.is_dir() else 0o644)

    def run(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                               "/usr/bin/python3", "-m", "memccp_py", *argv], cwd=top,
                              env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(top)},
                              capture_output=True, text=True, timeout=300)

    yield top, run
    shutil.rmtree(top)


def _fresh(*extra: str, text: bool = False) -> Iterator[Memcached]:
    server = start_memcached(*extra, text=text)
    yield server
    stop(server)


@pytest.fixture
def ascii_memcached() -> Iterator[Memcached]:
    """A fresh memcached -B ascii: it speaks only the text (and meta) protocol."""
    yield from _fresh("-B", "ascii", text=True)


@pytest.fixture
def binary_memcached() -> Iterator[Memcached]:
    """A fresh memcached -B binary: it speaks only the binary protocol."""
    yield from _fresh("-B", "binary")


@pytest.fixture
def one_mb_memcached() -> Iterator[Memcached]:
    """A fresh memcached -I 1m: no item over 1 MB."""
    yield from _fresh("-I", "1m")


@pytest.fixture
def twemproxy(tmp_path_factory):
    """nutcracker (twemproxy) on a free port in front of two fresh memcached servers."""
    from twemproxy import NUTCRACKER, start_twemproxy, stop_twemproxy

    if not os.path.exists(NUTCRACKER):
        pytest.skip("nutcracker (twemproxy) is not installed")
    proxy = start_twemproxy([start_memcached(), start_memcached()], tmp_path_factory.mktemp("nc"))
    yield proxy
    stop_twemproxy(proxy)


#: The SASL password of user alice on the ``sasl_memcached`` server.
SASL_PASSWORD = "s3cret-Pa55"


@pytest.fixture(scope="session")
def sasl_memcached(tmp_path_factory) -> Iterator[Memcached]:
    """memcached -S with user alice (password SASL_PASSWORD) in a private sasldb."""
    if not shutil.which("saslpasswd2"):
        pytest.skip("saslpasswd2 (sasl2-bin) is not installed")
    conf = tmp_path_factory.mktemp("sasl")
    db = conf / "sasldb2"
    (conf / "memcached.conf").write_text(f"mech_list: plain\nsasldb_path: {db}\n")
    subprocess.run(["saslpasswd2", "-p", "-a", "memcached", "-c", "-f", str(db), "alice"],
                   input=SASL_PASSWORD.encode(), check=True)
    server = start_memcached("-S", env=dict(os.environ, SASL_CONF_PATH=str(conf)))
    yield server
    stop(server)


def item(server: Memcached, key: bytes) -> Optional[Tuple[int, bytes, int]]:
    """(flags, value, ttl) of *key* on *server*, or None: what a store left there."""
    got = text_get(server, key)
    return None if got is None else (*got, ttl(server, key))


@pytest.fixture
def memcached_cluster() -> Iterator[List[Memcached]]:
    """Three fresh memcached servers."""
    servers = [start_memcached() for _ in range(3)]
    yield servers
    for server in servers:
        stop(server)


def text_command(server: Memcached, line: bytes, one_line: bool = False) -> bytes:
    """Send one text-protocol command line, return the whole reply (or its first line)."""
    ends = (b"END\r\n", b"OK\r\n", b"ERROR\r\n")
    one_line_replies = (b"BUSY ", b"CLIENT_ERROR ", b"SERVER_ERROR ")
    with connect(server) as sock:
        sock.sendall(line + b"\r\n")
        reply = b""
        while not (reply.endswith(b"\r\n") if one_line or reply.startswith(one_line_replies)
                   else reply.endswith(ends)):
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            reply += chunk
        return reply


def text_get(server: Memcached, key: bytes) -> Optional[Tuple[int, bytes]]:
    """(flags, value) of *key* read with the text protocol's get (as nginx does), or None."""
    with connect(server) as sock:
        sock.sendall(b"get " + key + b"\r\n")
        reader = sock.makefile("rb")
        head = reader.readline()
        if head == b"END\r\n":
            return None
        word, got_key, flags, length = head.split()
        assert (word, got_key) == (b"VALUE", key), head
        value = reader.read(int(length) + 2)
        assert value.endswith(b"\r\n") and reader.readline() == b"END\r\n"
        return int(flags), value[:-2]


def binary_get(server: Memcached, key: bytes) -> Optional[Tuple[int, bytes]]:
    """(flags, value) of *key* read with a binary-protocol GET (any key bytes), or None."""
    with connect(server) as sock:
        sock.sendall(bytes([0x80, 0x00]) + len(key).to_bytes(2, "big") + bytes(4)
                     + len(key).to_bytes(4, "big") + bytes(12) + key)
        reader = sock.makefile("rb")
        head = reader.read(24)
        status, length = int.from_bytes(head[6:8], "big"), int.from_bytes(head[8:12], "big")
        body = reader.read(length)
        if status == 1:  # not found
            return None
        assert status == 0 and head[4] == 4, head
        return int.from_bytes(body[:4], "big"), body[4:]


def ttl(server: Memcached, key: bytes) -> int:
    """Remaining time to live of *key* (-1: never expires), by meta get."""
    head = text_command(server, b"mg " + key + b" t", one_line=True).split(b"\r\n", 1)[0]
    assert head.startswith(b"HD"), head
    return int(next(t for t in head.split()[1:] if t.startswith(b"t"))[1:])


def dump_items(server: Memcached) -> Dict[bytes, Tuple[int, bytes, int]]:
    """Every item *server* holds: key -> (flags, value, ttl), ttl -1 for never. Keys of any
    bytes (spaces, controls) are listed by the LRU crawler and fetched base64-encoded. A crawl
    misses items the LRU maintainer moves meanwhile (after a read): it is done again until it
    lists as many keys as the server counts items."""
    # memcached's own LRU crawler may be running (it starts by itself): the metadump then
    # answers BUSY at once, and is asked again until the crawler is free.
    for _ in range(2000):
        listing = text_command(server, b"lru_crawler metadump all")
        if listing.startswith(b"BUSY "):
            time.sleep(0.01)
            continue
        assert listing.endswith(b"END\r\n"), listing[-200:]
        keys = {urllib.parse.unquote_to_bytes(line.split(b" ", 1)[0][4:])
                for line in listing.splitlines() if line.startswith(b"key=")}
        count = text_command(server, b"stats").split(b"STAT curr_items ", 1)[1].split(b"\r\n", 1)[0]
        if len(keys) == int(count):
            break
    items = {}
    with connect(server) as sock:
        reader = sock.makefile("rb")
        for key in keys:
            sock.sendall(b"mg " + base64.b64encode(key) + b" b v f t\r\n")
            head = reader.readline().split()
            if head[0] == b"EN":
                continue
            assert head[0] == b"VA", head
            value = reader.read(int(head[1]) + 2)[:-2]
            tokens = {t[:1]: int(t[1:]) for t in head[2:]}
            items[key] = (tokens[b"f"], value, tokens[b"t"])
    return items


@pytest.fixture
def peers():
    """Start fake peers (tests/peers.py) with peers(serve); all are closed after the test."""
    from peers import Peer

    started = []

    def start(serve):
        started.append(Peer(serve))
        return started[-1]

    yield start
    for peer in started:
        peer.close()
