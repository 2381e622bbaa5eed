"""Key rules: pure functions, table-driven."""

import pytest

from memccp_py.files.keys import (
    directory_uri, key_for_path, key_problem, key_warning, nginx_escape, uri_key,
)


@pytest.mark.parametrize("key, problem", [
    (b"a", None),
    (b"/images/a.gif", None),
    (b"x" * 250, None),
    (b"", "empty key"),
    (b"x" * 251, "key is 251 bytes long, memcached allows at most 250"),
    ("ñ".encode() * 125, None),
    ("ñ".encode() * 126, "key is 252 bytes long, memcached allows at most 250"),
    (b"\xff\xfe", None),
])
def test_key_problem(key, problem):
    """A key is storable iff it has 1 to 250 bytes, whatever the bytes are."""
    assert key_problem(key) == problem


@pytest.mark.parametrize("key, warns", [
    (b"/a.gif", False), (b"/a b.gif", True), (b"/a\nb", True), (b"/a\tb", True),
    (b"/\x00", True), ("/ñ".encode(), False), (b"/a%20b", False), (b"/\x7f", False),
])
def test_key_warning(key, warns):
    """Keys with space or control bytes draw a warning: text readers cannot ask for them."""
    assert (key_warning(key) is not None) == warns


@pytest.mark.parametrize("raw, escaped", [
    (b"/dir/a.gif", b"/dir/a.gif"),
    (b"/dir/a b.gif", b"/dir/a%20b.gif"),
    (b"/100%", b"/100%25"),
    (b"/a\tb\n", b"/a%09b%0A"),
    ("/dir/a b ñ.gif".encode(), b"/dir/a%20b%20\xc3\xb1.gif"),
    (b"/\x7f~+?&=#", b"/\x7f~+?&=#"),
    (b"\x1f\x20\x21", b"%1F%20!"),
])
def test_nginx_escape(raw, escaped):
    """Only 0x00-0x20 and % are escaped, as %XX in upper case (nginx NGX_ESCAPE_MEMCACHED)."""
    assert nginx_escape(raw) == escaped


@pytest.mark.parametrize("path, mode, key", [
    ("h.txt", "basename", b"h.txt"),
    ("/srv/www/img/a.gif", "basename", b"a.gif"),
    ("img/a.gif", "relative", b"img/a.gif"),
    ("./img/a.gif", "relative", b"./img/a.gif"),
    ("/srv/www/img/a.gif", "absolute", b"/srv/www/img/a.gif"),
    ("/srv/www/img/../img/a.gif", "absolute", b"/srv/www/img/a.gif"),
    ("/tmp/\udcff.gif", "basename", b"\xff.gif"),
])
def test_key_for_path(path, mode, key):
    """--basename (default), --relative and --absolute name keys like C memccp."""
    assert key_for_path(path, mode) == key


@pytest.mark.parametrize("path, base, key", [
    ("/srv/www/a.gif", "/srv/www", b"/a.gif"),
    ("/srv/www/img/a b.gif", "/srv/www/", b"/img/a b.gif"),
    ("www/img/a.gif", "www", b"/img/a.gif"),
])
def test_uri_key(path, base, key):
    """--docroot makes the URI a web server rooted at DIR would serve the file under."""
    assert uri_key(path, base) == key


@pytest.mark.parametrize("path, base", [("/etc/passwd", "/srv/www"), ("/srv/www", "/srv/www")])
def test_uri_key_outside_base(path, base):
    """A file outside --docroot has no URI: ValueError."""
    with pytest.raises(ValueError):
        uri_key(path, base)


@pytest.mark.parametrize("uri, directory", [
    (b"/index.html", b"/"),
    (b"/docs/index.html", b"/docs/"),
    (b"/a/b c/index.htm", b"/a/b c/"),
])
def test_directory_uri(uri, directory):
    """--index: an index file's directory URI keeps its trailing slash, / at the top."""
    assert directory_uri(uri) == directory
