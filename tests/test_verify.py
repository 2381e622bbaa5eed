"""After the run: items evicted while memccp ran are reported per server (exit 1), and
--verify reads every stored item back and names each one missing or different."""

import io
import os

import pytest

from conftest import start_memcached, stop, text_command, text_get
from helpers import run
from memccp_py import copier
from memccp_py.verify import verify
from memccp_py.placement.cluster import Cluster
from memccp_py.copier import Options, copy_files
from memccp_py.records import Job
from memccp_py.report import Reporter
from memccp_py.placement.servers import parse_servers

PATHS = ["unbuffered", "pipelined"]


def stat(server, name: str) -> int:
    lines = text_command(server, b"stats").decode().splitlines()
    return int(next(line.split()[2] for line in lines if line.split()[1:2] == [name]))


@pytest.fixture
def small_memcached():
    """A fresh memcached with 2 MB of memory (memcached -m 2)."""
    server = start_memcached("-m", "2")
    yield server
    stop(server)


def big_files(tmp_path, count=300, size=50000):
    paths = []
    for i in range(count):
        path = tmp_path / f"f{i:03}"
        path.write_bytes(os.urandom(size))
        paths.append(str(path))
    return paths


@pytest.mark.parametrize("path", PATHS)
def test_evictions_are_reported(small_memcached, tmp_path, capsys, path):
    """15 MB into memcached -m 2: every file stored, the evictions named for the server, exit 1."""
    paths = big_files(tmp_path)
    buffered = ["-B"] if path == "pipelined" else []
    code, out, err = run(capsys, *buffered, "-s", small_memcached.address, *paths)
    evicted = stat(small_memcached, "evictions")
    assert evicted > 0
    assert (code, out) == (1, "")
    assert err == (f"memccp: server {small_memcached.address}: {evicted} items evicted while memccp "
                   "ran (memcached -m too small?): stored files may be missing\n")
    present = [p for p in paths if text_get(small_memcached, os.path.basename(p).encode())
               == (0, open(p, "rb").read())]
    assert len(present) == len(paths) - evicted  # the server was empty: every eviction is ours


@pytest.mark.parametrize("path", PATHS)
def test_verify_names_each_missing_item(small_memcached, tmp_path, capsys, path):
    """--verify -v: each evicted item is named by file and key; the counts are summed up; exit 1.
    With -q the same error lines, and no summary."""
    paths = big_files(tmp_path)
    buffered = ["-B"] if path == "pipelined" else []
    code, out, err = run(capsys, *buffered, "-q", "-s", small_memcached.address, "--verify", *paths)
    missing = [p for p in paths if text_get(small_memcached, os.path.basename(p).encode()) is None]
    evicted = stat(small_memcached, "evictions")
    assert (code, out) == (1, "")
    assert len(missing) == evicted > 0
    assert err.splitlines()[1:] == [f"memccp: {p}: server {small_memcached.address}: key "
                                    f"'{os.path.basename(p)}' missing after the run" for p in missing]
    assert err.startswith(f"memccp: server {small_memcached.address}: {evicted} items evicted")
    text_command(small_memcached, b"flush_all")
    code, out, err = run(capsys, *buffered, "-v", "-s", small_memcached.address, "--verify", *paths)
    missing = [p for p in paths if text_get(small_memcached, os.path.basename(p).encode()) is None]
    lines = err.splitlines()
    assert code == 1 and len(missing) > 0
    assert lines[0].startswith(f"memccp: server {small_memcached.address}: ")
    assert lines[1:-2] == [f"memccp: {p}: server {small_memcached.address}: key "
                           f"'{os.path.basename(p)}' missing after the run" for p in missing]
    assert lines[-2:] == [f"memccp: 300 files, 300 stored ({300 * 50000} bytes), 0 failed",
                          f"memccp: verified 300 items, {len(missing)} missing or different"]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("protocol", ["binary", "text", "meta"])
def test_verify_names_changed_items(memcached, tmp_path, monkeypatch, protocol, path):
    """Items changed by someone else during the run (other bytes, other flags, deleted) are
    each named by --verify, in every dialect; untouched ones are not."""
    monkeypatch.setattr(copier, "BATCH_ITEMS", 4)  # the first four are flushed before the changes
    paths = []
    for name in ("same.txt", "bytes.txt", "flags.txt", "gone.txt", "late.txt", "last.txt"):
        (tmp_path / name).write_bytes(b"0123456789")
        paths.append(str(tmp_path / name))
    cluster = Cluster(parse_servers(memcached.address), protocol=protocol)

    def jobs():  # the changes come when the sixth name is asked for: the first four are
        for i, p in enumerate(paths):  # stored by then (unbuffered looks one name ahead)
            if i == 5:
                text_command(memcached, b"set bytes.txt 0 0 10\r\nabcdefghij", one_line=True)
                text_command(memcached, b"set flags.txt 7 0 10\r\n0123456789", one_line=True)
                text_command(memcached, b"delete gone.txt", one_line=True)
            yield Job(p, os.fsencode(os.path.basename(p)))

    err = io.StringIO()
    try:
        reporter = Reporter(None, err)
        summary = copy_files(jobs(), cluster, Options(buffered=path == "pipelined", verify=True), reporter)
        assert (summary.stored, err.getvalue()) == (6, "")
        assert verify(cluster, summary.written, reporter) == 3
    finally:
        cluster.close()
    at = f"server {memcached.address}"
    assert err.getvalue() == (
        f"memccp: {paths[1]}: {at}: key 'bytes.txt' differs after the run (other bytes than stored)\n"
        f"memccp: {paths[2]}: {at}: key 'flags.txt' differs after the run (read back flags 7, "
        "10 bytes; stored flags 0, 10 bytes)\n"
        f"memccp: {paths[3]}: {at}: key 'gone.txt' missing after the run\n")
    assert text_get(memcached, b"same.txt") == (0, b"0123456789")


@pytest.mark.parametrize("path", PATHS)
def test_verify_all_present(memcached, tmp_path, capsys, path):
    """--verify -v on a server that kept everything: the keys, the summary and
    'verified N items, 0 missing or different'; exit 0; the items as stored."""
    paths = []
    for i in range(5):
        (tmp_path / f"v{i}").write_bytes(b"value %d" % i)
        paths.append(str(tmp_path / f"v{i}"))
    buffered = ["-B"] if path == "pipelined" else []
    assert run(capsys, *buffered, "-v", "--verify", "-F", "9", "-s", memcached.address, *paths) == (
        0, "".join(f"v{i}\n" for i in range(5)),
        "memccp: 5 files, 5 stored (35 bytes), 0 failed\n"
        "memccp: verified 5 items, 0 missing or different\n")
    assert [text_get(memcached, b"v%d" % i) for i in range(5)] == [(9, b"value %d" % i) for i in range(5)]


@pytest.mark.parametrize("options", [[], ["-B"]], ids=PATHS)
def test_last_store_asks_for_evictions_in_its_round_trip(tmp_path, capsys, options):
    """The counter before is asked alone (its answer proves the server speaks binary before a
    file's bytes go out); the store and the counter after leave in one write: a peer that
    answers them only once it has both serves the run, and what it evicted is named."""
    from peers import NOOP, SETQ, STAT, Peer, reply, requests

    seen = []

    def serve(sock):
        for request in requests(sock):
            seen.append(request)
            if [r.opcode for r in seen] == [STAT]:
                sock.sendall(reply(STAT, request.opaque, key=b"evictions", value=b"0")
                             + reply(STAT, request.opaque))
            if [r.opcode for r in seen] == [STAT, SETQ, NOOP, STAT]:
                _, _, noop, after = (r.opaque for r in seen)
                sock.sendall(reply(NOOP, noop)
                             + reply(STAT, after, key=b"evictions", value=b"3") + reply(STAT, after))

    peer = Peer(serve)
    (tmp_path / "f").write_bytes(b"data")
    try:
        status, out, err = run(capsys, *options, "--timeout=2", "-s", peer.address, str(tmp_path / "f"))
    finally:
        peer.close()
    assert (status, out, err) == (1, "", f"memccp: server {peer.address}: 3 items evicted while memccp "
                                         "ran (memcached -m too small?): stored files may be missing\n")
    assert [(r.opcode, r.key) for r in seen] == [(STAT, b""), (SETQ, b"f"), (NOOP, b""), (STAT, b"")]
    assert seen[1].body[8 + 1:] == b"data"


@pytest.mark.parametrize("options", [[], ["-B"]], ids=PATHS)
def test_fault_after_the_last_store_leaves_it_stored(tmp_path, capsys, options):
    """A server that drops the connection once it has confirmed the last stores, before it
    answers the eviction counter asked with them: the files are stored, exit 0, and no
    eviction is claimed."""
    from peers import NOOP, STAT, Peer, reply, requests

    stored = []

    def serve(sock):
        previous = None
        for request in requests(sock):
            if request.opcode == STAT and previous == NOOP:
                return  # the counter asked after the last store: never answered
            if request.opcode == STAT:
                sock.sendall(reply(STAT, request.opaque, key=b"evictions", value=b"0")
                             + reply(STAT, request.opaque))
            elif request.opcode == NOOP:
                sock.sendall(reply(NOOP, request.opaque))
            else:
                stored.append(request.key)
            previous = request.opcode

    peer = Peer(serve)
    for name in ("a", "b"):
        (tmp_path / name).write_bytes(name.encode())
    try:
        status, out, err = run(capsys, *options, "-v", "--timeout=2", "-s", peer.address,
                               str(tmp_path / "a"), str(tmp_path / "b"))
    finally:
        peer.close()
    assert (status, out, err) == (0, "a\nb\n", "memccp: 2 files, 2 stored (2 bytes), 0 failed\n")
    assert stored == [b"a", b"b"]


def test_unbuffered_look_ahead_stores_a_file_before_the_next_name_fails(memcached, tmp_path):
    """Unbuffered, the copier looks one name ahead: a name that cannot be had raises only
    after the file before it is stored."""
    (tmp_path / "first").write_bytes(b"1")

    def jobs():
        yield Job(str(tmp_path / "first"), b"first")
        raise FileNotFoundError(2, "No such file or directory")

    cluster = Cluster(parse_servers(memcached.address))
    try:
        with pytest.raises(FileNotFoundError):
            copy_files(jobs(), cluster, Options(), Reporter(None, None))
    finally:
        cluster.close()
    assert text_get(memcached, b"first") == (0, b"1")
