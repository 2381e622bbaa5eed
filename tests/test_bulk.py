"""Bulk loading for nginx: --docroot/--prefix URI keys, --files-from (-0),
--recursive, --escape=nginx and --gzip, pipelined."""

import gzip
import io
import os
import sys
import zlib

import pytest

from conftest import text_get, ttl
from helpers import run


@pytest.fixture
def docroot(tmp_path):
    """A docroot with nested dirs and odd names: spaces, newline, %, UTF-8."""
    root = tmp_path / "www"
    files = {
        "index.html": b"<html>" + b"x" * 3000 + b"</html>",
        "img/a.gif": os.urandom(5000),
        "img/a b ñ.gif": os.urandom(700),
        "css/100%.css": b"body{}" * 400,
        "odd/new\nline.txt": b"nl",
    }
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root, files


def stdin_with(monkeypatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


def test_files_from_null_with_base(memcached, docroot, capsys, monkeypatch):
    """find -print0 | memccp --files-from=- -0 --docroot=DIR stores each file under its URI."""
    root, files = docroot
    names = b"".join(os.fsencode(root / n) + b"\0" for n in files)
    stdin_with(monkeypatch, names)
    code, out, err = run(capsys, "-s", memcached.address, "--files-from=-", "-0", f"--docroot={root}",
                         "--escape=nginx")
    assert (code, out, err) == (0, "", "")
    assert text_get(memcached, b"/img/a.gif") == (0, files["img/a.gif"])
    assert text_get(memcached, "/img/a%20b%20ñ.gif".encode()) == (0, files["img/a b ñ.gif"])
    assert text_get(memcached, b"/css/100%25.css") == (0, files["css/100%.css"])
    assert text_get(memcached, b"/odd/new%0Aline.txt") == (0, b"nl")


def test_files_from_lines_and_prefix(memcached, docroot, capsys, tmp_path):
    """--files-from=FILE reads one name a line; --prefix goes before every key."""
    root, files = docroot
    listing = tmp_path / "list"
    listing.write_bytes(b"".join(os.fsencode(root / n) + b"\n" for n in ("index.html", "img/a.gif")))
    code, out, err = run(capsys, "-v", "-s", memcached.address, f"--files-from={listing}",
                         f"--docroot={root}", "--prefix=www.example.org")
    assert code == 0
    assert out == "www.example.org/index.html\nwww.example.org/img/a.gif\n"
    assert err == f"memccp: 2 files, 2 stored ({3013 + 5000} bytes), 0 failed\n"
    assert text_get(memcached, b"www.example.org/img/a.gif") == (0, files["img/a.gif"])


def test_recursive_base(memcached, docroot, capsys):
    """-r --docroot=DIR DIR loads the whole docroot in one run."""
    root, files = docroot
    code, out, err = run(capsys, "-r", "--escape=nginx", "-s", memcached.address, f"--docroot={root}", str(root))
    assert (code, out, err) == (0, "", "")
    for name, data in files.items():
        key = name.replace("%", "%25").replace(" ", "%20").replace("\n", "%0A")
        assert text_get(memcached, b"/" + key.encode()) == (0, data)


def test_unescaped_odd_names_warn(memcached, docroot, capsys):
    """Without --escape=nginx, keys with spaces or newlines are stored but warned about."""
    root, files = docroot
    code, out, err = run(capsys, "-s", memcached.address, f"--docroot={root}", str(root / "img/a b ñ.gif"))
    assert (code, out) == (0, "")
    assert "warning: key contains space or control bytes (0x20)" in err


def test_file_outside_base(memcached, docroot, tmp_path, capsys):
    """A file outside --docroot is named and skipped; the others are stored."""
    root, files = docroot
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"o")
    code, out, err = run(capsys, "-s", memcached.address, f"--docroot={root}", str(outside), str(root / "index.html"))
    assert (code, out) == (1, "")
    assert err == f"memccp: {outside}: not below --docroot {root}\n"
    assert text_get(memcached, b"/index.html") == (0, files["index.html"])


def test_escaped_key_too_long(memcached, tmp_path, capsys):
    """A key over 250 bytes only after escaping is reported, not sent."""
    path = tmp_path / ("%" * 100)
    path.write_bytes(b"x")
    code, out, err = run(capsys, "-s", memcached.address, f"--docroot={tmp_path}", "--escape=nginx", str(path))
    assert (code, out) == (1, "")
    assert err.startswith(f"memccp: {path}: key is 301 bytes long, memcached allows at most 250")


def test_gzip_flag(memcached, docroot, capsys):
    """--gzip=FLAG stores gzip bytes with FLAG or'ed in, only where that is smaller."""
    root, files = docroot
    code, out, err = run(capsys, "-s", memcached.address, "-F", "1", "--gzip=2", f"--docroot={root}",
                         str(root / "css/100%.css"), str(root / "img/a.gif"))
    assert (code, out, err) == (0, "", "")
    flags, data = text_get(memcached, b"/css/100%.css")
    assert flags == 3 and len(data) < len(files["css/100%.css"])
    assert gzip.decompress(data) == files["css/100%.css"]
    assert text_get(memcached, b"/img/a.gif") == (1, files["img/a.gif"])  # random bytes: not smaller


def test_many_files_in_batches(memcached, tmp_path, capsys):
    """3,000 files go in several pipelined batches; every one is stored exactly."""
    paths = []
    for i in range(3000):
        path = tmp_path / f"{i}.bin"
        path.write_bytes(os.urandom(i % 3000))
        paths.append(path)
    code, out, err = run(capsys, "-B", "-s", memcached.address, *map(str, paths))
    assert (code, out, err) == (0, "", "")
    for path in paths:
        assert text_get(memcached, path.name.encode()) == (0, path.read_bytes())


def test_progress_line(memcached, tmp_path, monkeypatch):
    """A long run on a terminal keeps one progress line on stderr, erased before errors and at the end."""
    import io
    import itertools

    from memccp_py import copier, report
    from memccp_py.placement.cluster import Cluster
    from memccp_py.records import Job
    from memccp_py.placement.servers import parse_servers

    clock = itertools.count(0, 0.4)  # every look at the clock: 0.4 s later
    monkeypatch.setattr(report.time, "monotonic", lambda: next(clock))
    paths = []
    for i in range(8):
        path = tmp_path / f"p{i}"
        path.write_bytes(b"x" * 1024)
        paths.append(str(path))
    paths.insert(4, str(tmp_path / "missing"))
    err = io.StringIO()
    cluster = Cluster(parse_servers(memcached.address))
    jobs = [Job(p, os.path.basename(p).encode()) for p in paths]
    summary = copier.copy_files(jobs, cluster, copier.Options(), report.Reporter(None, err, progress=True))
    assert (summary.files, summary.stored, summary.failed) == (9, 8, 1)
    blank = "\r" + " " * 43 + "\r"
    assert err.getvalue() == (
        "\rmemccp: 3 files, 2 stored (2 KiB), 0 failed"
        "\rmemccp: 5 files, 4 stored (4 KiB), 0 failed" + blank
        + f"memccp: {tmp_path}/missing: No such file or directory\n"
        "\rmemccp: 7 files, 5 stored (5 KiB), 1 failed"
        "\rmemccp: 9 files, 7 stored (7 KiB), 1 failed" + blank)


@pytest.mark.parametrize("null", [False, True])
def test_bulk_paths_keep_expiry_flags_and_last_name(memcached, docroot, capsys, monkeypatch, null):
    """--files-from on the pipelined path: every name is stored, the last one without a
    trailing separator too, with the flags and expiry asked for."""
    root, files = docroot
    sep = b"\0" if null else b"\n"
    names = [os.fsencode(root / n) for n in ("index.html", "img/a.gif", "css/100%.css")]
    stdin_with(monkeypatch, sep.join(names))  # no separator after the last name
    code, out, err = run(capsys, "-s", memcached.address, "--files-from=-", *(["-0"] if null else []),
                         f"--docroot={root}", "-F", "42", "-e", "777")
    assert (code, out, err) == (0, "", "")
    for name in ("index.html", "img/a.gif", "css/100%.css"):
        key = b"/" + name.encode()
        assert text_get(memcached, key) == (42, files[name]), name
        assert 770 <= ttl(memcached, key) <= 777, name


def test_same_key_twice_in_one_batch(memcached, docroot, capsys):
    """-B -A with one file given twice: the first is stored, the second is named as existing
    (the batch is sent in order, not merged); exit 1."""
    root, files = docroot
    page = str(root / "index.html")
    code, out, err = run(capsys, "-B", "-A", "-v", "-s", memcached.address, page, page)
    assert (code, out) == (1, "index.html\n")
    assert err == (f"memccp: {page}: warning: same key 'index.html' as {page}: the last one is "
                   "stored (--docroot DIR keys files by their path)\n"
                   f"memccp: {page}: key 'index.html' already exists (--add stores only new keys)\n"
                   "memccp: 2 files, 1 stored (3013 bytes), 1 failed\n")
    assert text_get(memcached, b"index.html") == (0, files["index.html"])


def nginx_hash_server(key: bytes, count: int) -> int:
    """The server nginx's `hash $memcached_key;` asks first, as its upstream hash module
    computes it (Cache::Memcached's ((crc32(key) >> 16) & 0x7fff) % total weight)."""
    return ((zlib.crc32(key) >> 16) & 0x7FFF) % count


def test_nginx_hash_places_by_the_unescaped_key(memcached_cluster, tmp_path, capsys):
    """--escape=nginx --distribution=nginx-hash: each item is on the server nginx hashes the
    unescaped $memcached_key to, stored under the escaped key."""
    root = tmp_path / "www"
    names = [f"dir {i}/file {i} %.gif" for i in range(24)]
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(name.encode())
    servers = ",".join(s.address for s in memcached_cluster)
    code, out, err = run(capsys, "-s", servers, "--distribution=nginx-hash", "--escape=nginx",
                         f"--docroot={root}", "-r", str(root))
    assert (code, out, err) == (0, "", "")
    for name in names:
        uri = ("/" + name).encode()
        escaped = uri.replace(b"%", b"%25").replace(b" ", b"%20")
        home = nginx_hash_server(uri, 3)
        assert [text_get(s, escaped) for s in memcached_cluster] == \
            [(0, name.encode()) if i == home else None for i in range(3)], name
