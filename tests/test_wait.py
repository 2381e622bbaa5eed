"""--wait=SECONDS: copy once every server answers a binary NOOP; give up after SECONDS."""

import os
import socket
import subprocess
import threading

import pytest

from conftest import free_port, item, start_memcached, stop, text_get
from helpers import run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def listener(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(8)
    sock.settimeout(30)
    return sock


@pytest.fixture
def text_only_peer():
    """A peer that answers every connection with a text-protocol ERROR line (not memcached's
    binary protocol); yields its port."""
    sock = listener(free_port())
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            with conn:
                conn.recv(24)
                conn.sendall(b"ERROR\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield sock.getsockname()[1]
    stop.set()
    sock.shutdown(socket.SHUT_RDWR)  # wakes the accept()
    sock.close()
    thread.join(300)
    assert not thread.is_alive()


def waiting_memccp(servers: str, page) -> subprocess.Popen:
    """This checkout's memccp --wait=60 copying PAGE to SERVERS under the key /page.html."""
    return subprocess.Popen(["/usr/bin/python3", "-m", "memccp_py", "--wait=60", f"--servers={servers}",
                             "--key=/page.html", str(page)], env=dict(os.environ, PYTHONPATH=ROOT),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def hang_up_twice(silent: socket.socket, proc: subprocess.Popen) -> None:
    """Take two connections of PROC on SILENT and hang up: memccp is waiting, not failing."""
    for _ in range(2):
        conn, _ = silent.accept()
        conn.close()
    silent.close()
    assert proc.poll() is None


def ended(proc: subprocess.Popen, silent: socket.socket, server) -> None:
    """Clean up after a test of a late memcached: the listener, memccp, the server."""
    silent.close()
    if proc.poll() is None:
        proc.kill()
        proc.communicate()
    if server is not None:
        stop(server)


def test_wait_until_memcached_starts(tmp_path):
    """--wait=60 keeps asking a port that hangs up, then copies once memcached listens there:
    exit 0, no output, the file stored."""
    page = tmp_path / "page.html"
    page.write_bytes(b"<p>warm</p>")
    port = free_port()
    silent = listener(port)  # a server still starting: accepts, answers nothing, hangs up
    proc = waiting_memccp(f"127.0.0.1:{port}", page)
    server = None
    try:
        hang_up_twice(silent, proc)
        server = start_memcached(port=port)
        out, err = proc.communicate(timeout=300)
        assert (proc.returncode, out, err) == (0, b"", b"")
        assert item(server, b"/page.html") == (0, b"<p>warm</p>", -1)
    finally:
        ended(proc, silent, server)


@pytest.mark.parametrize("buffer", [[], ["-B"]])
def test_wait_gives_up_on_a_silent_server(memcached, tmp_path, capsys, buffer):
    """--wait=0.3 with one of two servers refusing connections: one error line naming it,
    exit 1, nothing stored on the server that answered."""
    page = tmp_path / "page.html"
    page.write_bytes(b"x")
    port = free_port()
    code, out, err = run(capsys, *buffer, "--wait=0.3",
                         f"--servers={memcached.address},127.0.0.1:{port}", str(page))
    assert (code, out) == (1, "")
    assert err == (f"memccp: --wait=0.3: server 127.0.0.1:{port} did not answer in time: "
                   "connection refused\n")
    assert text_get(memcached, b"page.html") is None


@pytest.mark.parametrize("buffer", [[], ["-B"]])
def test_wait_rejects_a_text_only_peer(memcached, text_only_peer, tmp_path, capsys, buffer):
    """A peer answering every request with a text-protocol ERROR speaks no memcached dialect:
    it never counts as ready."""
    page = tmp_path / "page.html"
    page.write_bytes(b"x")
    code, out, err = run(capsys, *buffer, "--wait=0.3", f"--servers=127.0.0.1:{text_only_peer}",
                         str(page))
    assert (code, out) == (1, "")
    assert err == (f"memccp: --wait=0.3: server 127.0.0.1:{text_only_peer} did not answer in "
                   "time: speaks no memcached protocol (binary: it answered 'ERROR'; meta: it "
                   "answered 'ERROR'; text: it answered 'ERROR')\n")


def test_wait_with_ready_servers_copies(memcached_cluster, tmp_path, capsys):
    """--wait with every server up copies at once as without it (-v lists the key)."""
    page = tmp_path / "page.html"
    page.write_bytes(b"ready")
    servers = ",".join(s.address for s in memcached_cluster)
    code, out, err = run(capsys, "--wait=5", f"--servers={servers}", "--distribution=all", "-v",
                         str(page))
    assert (code, out, err) == (0, "page.html\n", "memccp: 1 file, 1 stored (5 bytes), 0 failed\n")
    for server in memcached_cluster:
        assert text_get(server, b"page.html") == (0, b"ready")


@pytest.mark.parametrize("value", ["0", "-1", "abc", "3601"])
def test_wait_bad_value_is_usage_error(memcached, tmp_path, capsys, value):
    """--wait outside 0 < SECONDS <= 3600 is a usage error (exit 2), nothing stored."""
    page = tmp_path / "page.html"
    page.write_bytes(b"x")
    code, out, err = run(capsys, f"--wait={value}", f"--servers={memcached.address}", str(page))
    assert (code, out) == (2, "")
    assert "argument --wait" in err and "Traceback" not in err
    assert text_get(memcached, b"page.html") is None


def test_wait_for_a_unix_socket_memcached(tmp_path):
    """--wait with a unix socket server: memccp keeps asking while the socket hangs up, then
    copies once memcached -s listens on that path: exit 0, no output, the file stored."""
    page = tmp_path / "page.html"
    page.write_bytes(b"<p>unix</p>")
    path = str(tmp_path / "mc.sock")
    silent = socket.socket(socket.AF_UNIX)
    silent.bind(path)
    silent.listen(8)
    silent.settimeout(30)
    proc = waiting_memccp(path, page)
    server = None
    try:
        hang_up_twice(silent, proc)
        os.unlink(path)
        server = start_memcached(unix_path=path)
        out, err = proc.communicate(timeout=300)
        assert (proc.returncode, out, err) == (0, b"", b"")
        assert item(server, b"/page.html") == (0, b"<p>unix</p>", -1)
    finally:
        ended(proc, silent, server)


def test_wait_gives_up_on_a_missing_unix_socket(tmp_path, capsys):
    """--wait=0.2 with a unix socket path nobody listens on: one line naming it, exit 1."""
    page = tmp_path / "page.html"
    page.write_bytes(b"x")
    path = tmp_path / "none.sock"
    assert run(capsys, "--wait=0.2", f"--servers={path}", str(page)) == (
        1, "", f"memccp: --wait=0.2: server {path} did not answer in time: no such file or directory\n")
