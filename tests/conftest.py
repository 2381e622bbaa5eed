"""Fixtures: real memcached servers on free loopback ports, and readers that
fetch items back with the text protocol (as nginx does)."""

import os
import shutil
import socket
import subprocess
import time
from typing import Iterator, List, NamedTuple, Optional, Tuple

import pytest

MEMCACHED = shutil.which("memcached") or "/usr/bin/memcached"


class Memcached(NamedTuple):
    host: str
    port: int
    process: subprocess.Popen

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_until_answers(host: str, port: int, process: subprocess.Popen, seconds: float = 10) -> None:
    """Return once memcached answers a binary-protocol NOOP (SASL servers answer it too), fail if
    it dies or stays silent."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"memcached exited with {process.returncode}")
        try:
            with socket.create_connection((host, port), timeout=1) as sock:
                sock.sendall(bytes([0x80, 0x0A]) + bytes(22))
                if sock.recv(24)[:1] == b"\x81":
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"memcached on {host}:{port} did not answer")


def start_memcached(*extra: str, host: str = "127.0.0.1", env: Optional[dict] = None) -> Memcached:
    """Start a throwaway memcached on a free loopback port."""
    if not os.path.exists(MEMCACHED):
        pytest.skip("memcached is not installed")
    port = free_port(host)
    user = ["-u", "root"] if os.geteuid() == 0 else []
    process = subprocess.Popen([MEMCACHED, "-l", host, "-p", str(port), "-U", "0", *user, *extra],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env=env)
    try:
        wait_until_answers(host, port, process)
    except Exception:
        process.kill()
        raise
    return Memcached(host, port, process)


def stop(server: Memcached) -> None:
    server.process.terminate()
    try:
        server.process.wait(5)
    except subprocess.TimeoutExpired:
        server.process.kill()


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
def memcached_cluster() -> Iterator[List[Memcached]]:
    """Three fresh memcached servers."""
    servers = [start_memcached() for _ in range(3)]
    yield servers
    for server in servers:
        stop(server)


def text_command(server: Memcached, line: bytes, one_line: bool = False) -> bytes:
    """Send one text-protocol command line, return the whole reply (or its first line)."""
    ends = (b"END\r\n", b"OK\r\n", b"ERROR\r\n")
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(line + b"\r\n")
        reply = b""
        while not (reply.endswith(b"\r\n") if one_line else reply.endswith(ends)):
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            reply += chunk
        return reply


def text_get(server: Memcached, key: bytes) -> Optional[Tuple[int, bytes]]:
    """(flags, value) of *key* read with the text protocol's get (as nginx does), or None."""
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
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


def ttl(server: Memcached, key: bytes) -> int:
    """Remaining time to live of *key* (-1: never expires), by meta get."""
    head = text_command(server, b"mg " + key + b" t", one_line=True).split(b"\r\n", 1)[0]
    assert head.startswith(b"HD"), head
    return int(next(t for t in head.split()[1:] if t.startswith(b"t"))[1:])


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
