"""--suffix and --index against a real memcached: keys as nginx asks for them.

Expected keys are written out by hand here (what nginx's ``set $memcached_key
"$uri?$args";`` makes of a request without arguments), not computed by memccp_py.
"""

import urllib.parse

import pytest

from conftest import text_command, text_get, ttl
from helpers import run


def stored_keys(server) -> set:
    """Every key the server holds (lru_crawler metadump), as bytes."""
    reply = text_command(server, b"lru_crawler metadump all")
    keys = set()
    for line in reply.splitlines():
        if line.startswith(b"key="):
            keys.add(urllib.parse.unquote_to_bytes(line.split()[0][4:]))
    return keys


@pytest.fixture
def site(tmp_path):
    """A small docroot: index.html at the top and in docs/, other files beside them."""
    root = tmp_path / "www"
    files = {"index.html": b"<h1>top</h1>", "docs/index.html": b"<h1>docs</h1>",
             "docs/a.css": b"a{}", "img/x.gif": b"GIF89a\x00\x01"}
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


@pytest.mark.parametrize("buffer", [[], ["-B"]])
def test_suffix_after_every_key(memcached, tmp_path, capsys, buffer):
    """--suffix=? follows every key, after --prefix, with --key, --basename and --relative."""
    one, two = tmp_path / "one.gif", tmp_path / "two.png"
    one.write_bytes(b"1")
    two.write_bytes(b"22")
    server = f"--servers={memcached.address}"
    assert run(capsys, *buffer, server, "--suffix=?", "--prefix=example.com", "--key=/k.gif",
               str(one)) == (0, "", "")
    assert run(capsys, *buffer, server, "--suffix=?x=1", str(one), str(two)) == (0, "", "")
    assert stored_keys(memcached) == {b"example.com/k.gif?", b"one.gif?x=1", b"two.png?x=1"}
    assert text_get(memcached, b"example.com/k.gif?") == (0, b"1")
    assert text_get(memcached, b"one.gif?x=1") == (0, b"1")
    assert text_get(memcached, b"two.png?x=1") == (0, b"22")
    assert ttl(memcached, b"two.png?x=1") == -1


def test_index_stores_directory_uris(memcached, site, capsys):
    """--docroot with --index=index.html stores index files under /docs/ and / as well (-v lists
    every key), with the prefix and suffix, flags and expiry of the others."""
    code, out, err = run(capsys, f"--servers={memcached.address}", f"--docroot={site}", "-r",
                         "--index=index.html", "--prefix=www.example.org", "--suffix=?",
                         "-F", "5", "-e", "600", "-v", str(site))
    assert (code, err) == (0, "memccp: 6 files, 6 stored (61 bytes), 0 failed\n")
    assert sorted(out.splitlines()) == sorted([
        "www.example.org/index.html?", "www.example.org/?", "www.example.org/docs/index.html?",
        "www.example.org/docs/?", "www.example.org/docs/a.css?", "www.example.org/img/x.gif?"])
    assert stored_keys(memcached) == {line.encode() for line in out.splitlines()}
    assert text_get(memcached, b"www.example.org/?") == (5, b"<h1>top</h1>")
    assert text_get(memcached, b"www.example.org/docs/?") == (5, b"<h1>docs</h1>")
    assert text_get(memcached, b"www.example.org/docs/index.html?") == (5, b"<h1>docs</h1>")
    assert 590 <= ttl(memcached, b"www.example.org/docs/?") <= 600


def test_index_first_name_found_wins(memcached, tmp_path, capsys):
    """--index=index.html --index=index.htm: as nginx's index directive, a directory with both
    serves index.html; one with only index.htm serves that."""
    root = tmp_path / "www"
    (root / "both").mkdir(parents=True)
    (root / "old").mkdir()
    (root / "both" / "index.htm").write_bytes(b"htm")
    (root / "both" / "index.html").write_bytes(b"html")
    (root / "old" / "index.htm").write_bytes(b"old htm")
    code, out, err = run(capsys, f"--servers={memcached.address}", f"--docroot={root}", "-r",
                         "--index=index.html", "--index=index.htm", str(root))
    assert (code, out, err) == (0, "", "")
    assert stored_keys(memcached) == {b"/both/index.htm", b"/both/index.html", b"/both/",
                                      b"/old/index.htm", b"/old/"}
    assert text_get(memcached, b"/both/") == (0, b"html")
    assert text_get(memcached, b"/old/") == (0, b"old htm")


def test_index_escaped_like_the_file(memcached, tmp_path, capsys):
    """With --escape=nginx the directory key is escaped as nginx escapes $uri ("/my docs/")."""
    root = tmp_path / "www"
    (root / "my docs").mkdir(parents=True)
    (root / "my docs" / "index.html").write_bytes(b"spaced")
    listing = tmp_path / "list"
    listing.write_bytes(str(root / "my docs" / "index.html").encode() + b"\n")
    code, out, err = run(capsys, f"--servers={memcached.address}", f"--docroot={root}",
                         f"--files-from={listing}", "--index=index.html", "--escape=nginx",
                         "--suffix=?")
    assert (code, out, err) == (0, "", "")
    assert stored_keys(memcached) == {b"/my%20docs/index.html?", b"/my%20docs/?"}
    assert text_get(memcached, b"/my%20docs/?") == (0, b"spaced")


def test_index_of_a_missing_file_reported_once(memcached, site, capsys):
    """A listed index file that does not exist is one error line; nothing is stored for it."""
    missing = site / "gone" / "index.html"
    code, out, err = run(capsys, f"--servers={memcached.address}", f"--docroot={site}",
                         "--index=index.html", str(missing), str(site / "index.html"))
    assert (code, out) == (1, "")
    assert err == f"memccp: {missing}: No such file or directory\n"
    assert stored_keys(memcached) == {b"/index.html", b"/"}


def test_index_directory_key_refused_by_add(memcached, site, capsys):
    """--add with /docs/ already stored: the directory key fails alone (exit 1), the file
    itself is stored, the old /docs/ item is kept."""
    assert run(capsys, f"--servers={memcached.address}", "--key=/docs/",
               str(site / "img" / "x.gif")) == (0, "", "")
    code, out, err = run(capsys, f"--servers={memcached.address}", f"--docroot={site}", "--add",
                         "--index=index.html", str(site / "docs" / "index.html"))
    assert (code, out) == (1, "")
    assert err == (f"memccp: {site / 'docs' / 'index.html'}: key '/docs/' already exists "
                   "(--add stores only new keys)\n")
    assert stored_keys(memcached) == {b"/docs/", b"/docs/index.html"}
    assert text_get(memcached, b"/docs/") == (0, b"GIF89a\x00\x01")
    assert text_get(memcached, b"/docs/index.html") == (0, b"<h1>docs</h1>")


@pytest.mark.parametrize("argv, message", [
    (["--index=index.html"], "memccp: --index needs --docroot: only then are keys URIs with directories\n"),
    (["--index=a/b", "--docroot=."], "error: argument --index: 'a/b' is not a file name"),
    (["--index=", "--docroot=."], "error: argument --index: '' is not a file name"),
])
def test_index_usage_errors(memcached, site, capsys, argv, message):
    """--index without --docroot, or with a path instead of a file name, is a usage error (exit 2)
    and stores nothing."""
    code, out, err = run(capsys, f"--servers={memcached.address}", *argv, str(site / "index.html"))
    assert (code, out) == (2, "")
    assert message in err and "Traceback" not in err
    assert stored_keys(memcached) == set()
