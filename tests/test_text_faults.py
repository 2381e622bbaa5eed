"""Faults of text- and meta-protocol servers stay per server and per file, as in the
binary fault matrix (test_faults.py): the faulty peer's files are named with the reason,
the real memcached beside it gets its files; the same lines unbuffered and with -B."""

import os
import subprocess
import threading

import pytest

from conftest import dump_items
from test_signals import memccp
from helpers import make_files, placed_on, run
from peers import (TEXT_FAULTS, close_at_second, like_text_memcached, like_twemproxy, stored,
                   text_requests)

PATHS = ["unbuffered", "pipelined"]
CASES = [(name, protocol) for name, (_, _, protocols) in TEXT_FAULTS.items() for protocol in protocols]


def buffering(path):
    return ["-B"] if path == "pipelined" else []


def expected_items(paths):
    return {os.path.basename(p).encode(): (0, open(p, "rb").read(), -1) for p in paths}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name,protocol", CASES, ids=[f"{n}-{p}" for n, p in CASES])
def test_server_fault_fails_only_its_files(memcached, peers, tmp_path, capsys, name, protocol, path):
    """Each fault of a text or meta peer fails exactly its files, named with the reason; the
    real memcached gets its files; the -v summary; exit 1."""
    serve, reason, _ = TEXT_FAULTS[name]
    bad = peers(serve).address
    servers = f"{memcached.address},{bad}"
    paths = make_files(tmp_path, 12)
    failed = placed_on(servers, paths, 1)
    good = [p for p in paths if p not in failed]
    assert failed and good
    code, out, err = run(capsys, *buffering(path), "-v", f"--protocol={protocol}", "--timeout=0.5",
                         "-s", servers, *paths)
    size = sum(os.path.getsize(p) for p in good)
    assert (code, out) == (1, "".join(os.path.basename(p) + "\n" for p in good))
    assert err == "".join(f"memccp: {p}: server {bad}: {reason}\n" for p in failed) + (
        f"memccp: 12 files, {len(good)} stored ({size} bytes), {len(failed)} failed\n")
    assert dump_items(memcached) == expected_items(good)


class Refusing:
    """A text/meta peer that answers the stores of some keys with a SERVER_ERROR line
    (*lines*: key -> line) and the others as stored, keeping what it stored."""

    def __init__(self, lines):
        self.lines = lines
        self.items = {}
        self.lock = threading.Lock()

    def __call__(self, sock, words, data, count):
        key = words[1]
        if key in self.lines:
            sock.sendall(self.lines[key] + b"\r\n")
            return
        with self.lock:
            self.items[key] = data
        sock.sendall(stored(words))


REFUSALS = [(b"SERVER_ERROR out of memory storing object", "the server is out of memory"),
            (b"SERVER_ERROR object too large for cache",
             "value is larger than the server's item size limit (memcached -I)"),
            (b"SERVER_ERROR disk\x01 on fire", "the server answered: disk\\x01 on fire")]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("protocol", ["text", "meta"])
def test_server_errors_fail_single_items(memcached, peers, tmp_path, capsys, protocol, path):
    """SERVER_ERROR for single items of a batch (out of memory, too large, any other text)
    fails those files, each with its message; the peer's other files are stored, the real
    memcached beside it gets its files; the summary; exit 1."""
    paths = make_files(tmp_path, 12)
    refusing = Refusing({})
    peer = peers(like_text_memcached(refusing))
    servers = f"{memcached.address},{peer.address}"
    on_peer = placed_on(servers, paths, 1)
    refused = on_peer[:3]
    assert len(on_peer) > 3 and len(on_peer) < len(paths)
    refusing.lines.update((os.path.basename(p).encode(), line)
                          for p, (line, _) in zip(refused, REFUSALS))
    good = [p for p in paths if p not in refused]
    code, out, err = run(capsys, *buffering(path), "-v", f"--protocol={protocol}", "-s", servers,
                         *paths)
    size = sum(os.path.getsize(p) for p in good)
    assert (code, out) == (1, "".join(os.path.basename(p) + "\n" for p in good))
    assert err == "".join(f"memccp: {p}: {why}\n" for p, (_, why) in zip(refused, REFUSALS)) + (
        f"memccp: 12 files, 9 stored ({size} bytes), 3 failed\n")
    assert refusing.items == {os.path.basename(p).encode(): open(p, "rb").read()
                              for p in on_peer[3:]}
    assert dump_items(memcached) == expected_items([p for p in paths if p not in on_peer])


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("protocol", ["text", "meta"])
def test_close_mid_batch(memcached, peers, tmp_path, capsys, protocol, path):
    """A peer that answers one store and closes at the next: the files it did not answer are
    named 'connection closed by the server'; the real memcached gets its files; exit 1."""
    bad = peers(like_text_memcached(close_at_second)).address
    servers = f"{memcached.address},{bad}"
    paths = make_files(tmp_path, 12)
    on_peer = placed_on(servers, paths, 1)
    # unbuffered, each file is a batch: the first is answered; pipelined, the whole batch
    # fails with the fault, the answered item too (nothing proves it stayed stored)
    failed = on_peer[1:] if path == "unbuffered" else on_peer
    good = [p for p in paths if p not in failed]
    code, out, err = run(capsys, *buffering(path), "-v", f"--protocol={protocol}", "-s", servers, *paths)
    size = sum(os.path.getsize(p) for p in good)
    assert (code, out) == (1, "".join(os.path.basename(p) + "\n" for p in good))
    assert err == "".join(f"memccp: {p}: server {bad}: connection closed by the server\n"
                          for p in failed) + (
        f"memccp: 12 files, {len(good)} stored ({size} bytes), {len(failed)} failed\n")
    assert dump_items(memcached) == expected_items([p for p in good if p not in on_peer])


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("version,reset", [(b"VERSION 0.5.0", False),
                                           (b"SERVER_ERROR Connection refused", False),
                                           (b"VERSION 0.5.0", True)],
                         ids=["version answered", "version refused", "binary reset"])
def test_auto_speaks_text_to_a_proxy(peers, tmp_path, capsys, version, reset, path):
    """auto against a peer acting as twemproxy (it closes at binary, mn and stats; 'version'
    answered, or refused with SERVER_ERROR as for a backend down; the binary request closed
    unread, a reset): text, the two -v notes, every file stored; exit 0."""
    items = {}
    peer = peers(like_twemproxy(version, items, reset))
    paths = make_files(tmp_path, 5)
    code, out, err = run(capsys, *buffering(path), "-v", "-F", "3", "-s", peer.address, *paths)
    at = f"memccp: server {peer.address}"
    size = sum(os.path.getsize(p) for p in paths)
    assert (code, out) == (0, "".join(os.path.basename(p) + "\n" for p in paths))
    assert err == (f"{at} rejects the binary protocol (it closed the connection at the first "
                   "binary request): speaking text to it\n"
                   f"{at} answers no statistics (a proxy?): evictions and item sizes there are "
                   f"unknown\nmemccp: 5 files, 5 stored ({size} bytes), 0 failed\n")
    assert items == {os.path.basename(p).encode(): (3, open(p, "rb").read()) for p in paths}


def _store_twice_at_first(sock, words, data, count):
    """Answer the first store twice (one reply too many), the others once."""
    sock.sendall(stored(words) * (2 if count == 0 else 1))


@pytest.mark.parametrize("path", PATHS)
def test_text_replies_out_of_step_fail_the_server(memcached, peers, tmp_path, capsys, path):
    """A text peer that answers one store twice: the batch's barrier finds the extra reply,
    so no result lands on another file; its files fail naming the fault; exit 1."""
    bad = peers(like_text_memcached(_store_twice_at_first)).address
    paths = make_files(tmp_path, 3)
    code, out, err = run(capsys, "-B", "--protocol=text", "-s", bad, *paths) if path == "pipelined" \
        else run(capsys, "--protocol=text", "-s", bad, paths[0])
    failed = paths if path == "pipelined" else paths[:1]
    assert (code, out) == (1, "")
    assert err == "".join(f"memccp: {p}: server {bad}: answered out of step (after the last "
                          "store, 'STORED')\n" for p in failed)


def _meta_once(seen):
    """A peer that speaks meta on its first connection only (then, like a memcached without
    meta, answers mn with ERROR), noting each data block it is sent as a store."""
    connections = []

    def serve(sock):
        connections.append(sock)
        first, stores = len(connections) == 1, 0
        for words, data in text_requests(sock):
            if words[:1] == [b"mn"]:
                sock.sendall(b"MN\r\n" if first else b"ERROR\r\n")
                if stores:
                    return  # closes after a batch: the next file reconnects
            elif words[:1] == [b"version"]:
                sock.sendall(b"VERSION 1.4.0\r\n")
            elif words[:1] == [b"stats"]:
                sock.sendall(b"STAT evictions 0\r\nEND\r\n")
            elif words[:1] == [b"ms"]:
                seen.append(data)
                stores += 1
                sock.sendall(stored(words))
            else:
                sock.sendall(b"ERROR\r\n")
    return serve


def test_meta_is_checked_again_on_every_connection(peers, tmp_path, capsys):
    """A server that no longer speaks meta after a reconnect (a restart into an older
    memcached) gets no file bytes: the file sent as it closed fails so, the reconnect's mn
    fails the next; exit 1."""
    seen = []
    bad = peers(_meta_once(seen)).address
    paths = make_files(tmp_path, 3)
    code, out, err = run(capsys, "--protocol=meta", "--retry-timeout=0", "-s", bad, *paths)
    assert (code, out) == (1, "")
    assert err == (f"memccp: {paths[1]}: server {bad}: connection closed by the server\n"
                   f"memccp: {paths[2]}: server {bad}: does not speak the meta protocol (it "
                   "answered 'ERROR')\n")
    assert seen == [open(paths[0], "rb").read()]


@pytest.mark.parametrize("option", ["--protocol=auto", "-b"])
def test_text_error_line_rejects_binary_at_once(ascii_memcached, tmp_path, option):
    """memcached -B ascii answers the binary probe with ERROR and keeps the connection open:
    that line decides at once (auto: meta, stored; -b: the file fails), --timeout=300 never
    runs out (the 20 s limit on the process only guards against a hang)."""
    (tmp_path / "t.txt").write_bytes(b"t")
    proc = memccp(option, "--timeout=300", "-s", ascii_memcached.address, str(tmp_path / "t.txt"))
    try:
        out, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    if option == "-b":
        assert (proc.returncode, out, err) == (1, b"", (
            f"memccp: {tmp_path / 't.txt'}: server {ascii_memcached.address}: does not speak the "
            "binary protocol (it answered 'ERROR'); --protocol=text or meta speaks to it\n").encode())
        assert dump_items(ascii_memcached) == {}
    else:
        assert (proc.returncode, out, err) == (0, b"", b"")
        assert dump_items(ascii_memcached) == {b"t.txt": (0, b"t", -1)}
