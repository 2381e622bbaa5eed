"""Server faults stay per server and per file: a faulty server's files are named
with the reason, the other server still gets its files, the -v summary is
printed, exit 1; the same lines on the unbuffered and the pipelined (-B) path."""

import io
import os

import pytest

from conftest import SASL_PASSWORD, start_memcached, stop, text_get
from helpers import make_files, placed_on, run
from memccp_py.placement.cluster import Cluster
from memccp_py.placement.servers import parse_servers
from peers import FAULTS, SlowLink

PASSWORD = SASL_PASSWORD
PATHS = ["unbuffered", "pipelined"]



def fault_case(request, peers):
    """(address of the faulty server, the reason memccp must give, extra arguments)."""
    name = request.param
    if name == "auth refused":
        server = request.getfixturevalue("sasl_memcached")
        return server.address, "authentication failed (wrong username or password)", ["-u", "alice", "-p", "nope"]
    if name == "auth required":
        server = request.getfixturevalue("sasl_memcached")
        return server.address, "authentication required: give --username and --password", []
    if name == "text-only memcached (-B ascii)":
        return (request.getfixturevalue("ascii_memcached").address, "does not speak the binary protocol "
                "(it answered 'ERROR'); --protocol=text or meta speaks to it", ["-b"])
    serve, reason = FAULTS[name]
    return peers(serve).address, reason, []


@pytest.fixture(params=["auth refused", "auth required", "text-only memcached (-B ascii)", *FAULTS])
def fault(request, peers):
    return fault_case(request, peers)


@pytest.mark.parametrize("path", PATHS)
def test_server_fault_fails_only_its_files(memcached, fault, tmp_path, capsys, path):
    """Each fault of one server fails exactly its files, named with the reason; the other
    server gets its files; the -v summary is printed; exit 1; same lines both ways."""
    bad, reason, extra = fault
    servers = f"{memcached.address},{bad}"
    paths = make_files(tmp_path, 12)
    failed = placed_on(servers, paths, 1)
    stored = [p for p in paths if p not in failed]
    assert failed and stored
    buffered = ["-B"] if path == "pipelined" else []
    code, out, err = run(capsys, *buffered, "-v", "--timeout=0.5", "-s", servers, *extra, *paths)
    size = sum(os.path.getsize(p) for p in stored)
    assert (code, out) == (1, "".join(os.path.basename(p) + "\n" for p in stored))
    assert err == "".join(f"memccp: {p}: server {bad}: {reason}\n" for p in failed) + (
        f"memccp: 12 files, {len(stored)} stored ({size} bytes), {len(failed)} failed\n")
    for p in paths:
        expected = (0, open(p, "rb").read()) if p in stored else None
        assert text_get(memcached, os.path.basename(p).encode()) == expected


@pytest.mark.parametrize("path", PATHS)
def test_slow_live_link_is_not_a_timeout(memcached, tmp_path, capsys, path):
    """--timeout is 'no progress': a 900 KB file over a ~640 KB/s link stores with --timeout=0.5."""
    link = SlowLink(memcached.address, 640 << 10)
    try:
        big = tmp_path / "big.bin"
        big.write_bytes(os.urandom(900 << 10))
        buffered = ["-B"] if path == "pipelined" else []
        assert run(capsys, *buffered, "--timeout=0.5", "-s", link.address, str(big)) == (0, "", "")
    finally:
        link.close()
    assert text_get(memcached, b"big.bin") == (0, big.read_bytes())


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_failed_server_rests_then_is_tried_again(peers):
    """After a fault a server is not contacted for --retry-timeout seconds, then it is again."""
    from memccp_py.records import Item
    from peers import FAULTS

    peer = peers(FAULTS["closed connection"][0])
    clock = Clock()
    cluster = Cluster(parse_servers(peer.address), timeout=0.5, retry_timeout=2.0, clock=clock)
    conn = cluster.connections[0]
    item = Item(b"k", b"v", 0)
    first = cluster.store(conn, "set", [item], 0)
    assert [str(exc) for _, exc in first] == [f"server {peer.address}: connection closed by the server"]
    assert peer.accepted == 1
    clock.now += 1.9
    assert [exc for _, exc in cluster.store(conn, "set", [item], 0)] == [first[0][1]]
    assert peer.accepted == 1  # resting: not contacted
    clock.now += 0.2
    assert len(cluster.store(conn, "set", [item], 0)) == 1
    assert peer.accepted == 2  # tried again
    cluster.close()


@pytest.mark.parametrize("path", PATHS)
def test_restarted_server_gets_later_files(tmp_path, monkeypatch, path):
    """memcached restarted mid-run: files while it was down are named, files after its
    retry interval are stored on the new process."""
    from memccp_py import copier
    from memccp_py.copier import Options, copy_files
    from memccp_py.records import Job
    from memccp_py.report import Reporter

    monkeypatch.setattr(copier, "BATCH_ITEMS", 4)  # small batches: each phase is flushed
    server = start_memcached()
    clock = Clock()
    cluster = Cluster(parse_servers(server.address), timeout=2, retry_timeout=2.0, clock=clock)
    paths = make_files(tmp_path, 12)

    ahead = 0 if path == "pipelined" else 1  # unbuffered, the copier asks one name ahead

    def jobs():
        nonlocal server
        for i, p in enumerate(paths):
            if i == 4 + ahead:
                stop(server)
            if i == 8 + ahead:
                server = start_memcached(port=server.port)
                clock.now += 2.5  # the retry interval has passed
            yield Job(p, os.fsencode(os.path.basename(p)))

    out, err = io.StringIO(), io.StringIO()
    try:
        summary = copy_files(jobs(), cluster, Options(buffered=path == "pipelined"),
                             Reporter(out, err, verbose=True))
        for p in paths[4:]:  # the new process holds exactly the files sent after it was back
            expected = (0, open(p, "rb").read()) if p in paths[8:] else None
            assert text_get(server, os.path.basename(p).encode()) == expected
    finally:
        cluster.close()
        stop(server)
    lines = err.getvalue().splitlines()
    assert [line.split(": server ")[0] for line in lines] == [f"memccp: {p}" for p in paths[4:8]]
    assert len({line.split(": server ")[1] for line in lines}) == 1  # one fault, named for each
    assert out.getvalue() == "".join(os.path.basename(p) + "\n" for p in paths[:4] + paths[8:])
    assert (summary.files, summary.stored, summary.failed) == (12, 8, 4)


@pytest.mark.parametrize("value", ["-1", "abc", "3601"])
def test_retry_timeout_usage_errors(memcached, tmp_path, capsys, value):
    """--retry-timeout takes 0 to 3600 seconds; anything else is a usage error, nothing stored."""
    (tmp_path / "r.txt").write_bytes(b"r")
    code, out, err = run(capsys, "-s", memcached.address, f"--retry-timeout={value}", str(tmp_path / "r.txt"))
    assert (code, out) == (2, "")
    assert f"{value!r} is not a number of seconds from 0 to 3600" in err and "Traceback" not in err
    assert text_get(memcached, b"r.txt") is None
