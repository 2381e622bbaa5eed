"""Names resolved beneath held directories (memccp_py.files.resolve): the link rule, the tree's
bound and ".." judged by what was opened, the same with openat2() and a component at a time."""

import errno
import os
import pathlib
import shutil
import tempfile

import pytest

from memccp_py.files import nodes
from memccp_py.files.nodes import LinkError
from memccp_py.files.resolve import Refused, Scope

NOBODY = 65534


@pytest.fixture(params=["openat2", "component walk"])
def way(request, monkeypatch):
    """Each test runs with openat2() for names with no link, and with the component walk
    alone (a kernel before 5.6, or a filter that forbids openat2)."""
    if request.param == "component walk":
        monkeypatch.setattr(nodes, "_openat2", False)
    else:
        nodes._openat2 = None  # loaded again: a test before may have turned it off
        if not nodes._load():
            pytest.skip("no openat2() here")
    return request.param


@pytest.fixture
def place(tmp_path):
    """doc/ (the tree) with img/a.gif; secret/shadow (root's, 0600) beside it."""
    doc = tmp_path / "doc"
    (doc / "img").mkdir(parents=True)
    (doc / "img" / "a.gif").write_bytes(b"GIF89a")
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "shadow").write_bytes(b"root:hash")
    (tmp_path / "secret" / "shadow").chmod(0o600)
    return tmp_path


@pytest.fixture
def open_place():
    """A directory every user may reach (pytest's tmp_path is closed to other users)."""
    top = pathlib.Path(tempfile.mkdtemp())
    top.chmod(0o755)
    yield top
    shutil.rmtree(top)


def link(path, target, uid: int = 0) -> None:
    os.symlink(target, path)
    os.lchown(path, uid, uid)


def tree(doc) -> Scope:
    scope = Scope()
    return scope.tree(scope.resolve(None, str(doc)), str(doc))


def content(node) -> bytes:
    fd = node.reopen(os.O_RDONLY)
    try:
        return os.read(fd, 100)
    finally:
        os.close(fd)


def test_plain_name_opens_the_file(place, way):
    """A name with no link is the file it names, from / or from a held directory."""
    scope = tree(place / "doc")
    assert content(Scope().resolve(None, f"{place}/doc/img/a.gif")) == b"GIF89a"
    assert content(scope.resolve(scope.root, "img/a.gif")) == b"GIF89a"


@pytest.mark.skipif(os.geteuid() != 0, reason="links of another user need root to make")
def test_link_of_another_user_to_roots_file_is_refused(place, way):
    """A link owned by nobody to root's file: refused, naming both owners; anywhere in the
    name (its last component or a directory on the way); --follow-any-link follows it."""
    link(place / "doc" / "a.gif", place / "secret" / "shadow", NOBODY)
    link(place / "doc" / "keys", place / "secret", NOBODY)
    for name in ("a.gif", "keys/shadow"):
        with pytest.raises(Refused) as caught:
            Scope().resolve(None, f"{place}/doc/{name}")
        assert caught.value.reason == ("the link is owned by nobody (65534), its target by root (0) "
                                       "(--follow-any-link follows it)")
        assert caught.value.link == f"{place}/doc/{name.split('/')[0]}"
        assert content(Scope(follow_any=True).resolve(None, f"{place}/doc/{name}")) == b"root:hash"


@pytest.mark.skipif(os.geteuid() != 0, reason="files of another user need root to make")
def test_link_to_a_file_of_its_own_owner_is_followed(place, way):
    """A deploy user's own layout: current -> releases/1, both theirs, is followed by root."""
    releases = place / "site" / "releases" / "1"
    releases.mkdir(parents=True)
    (releases / "index.html").write_bytes(b"v1")
    for path in (place / "site", place / "site" / "releases", releases, releases / "index.html"):
        os.chown(path, NOBODY, NOBODY)
    link(place / "site" / "current", "releases/1", NOBODY)
    assert content(Scope().resolve(None, f"{place}/site/current/index.html")) == b"v1"
    docroot = tree(place / "site" / "current")
    assert content(docroot.resolve(docroot.root, "index.html")) == b"v1"


def test_tree_bound_by_what_was_opened(place, way):
    """In a tree: a link out of it is refused, one that leaves and comes back (../doc/img,
    an absolute path into it) is followed; ".." above the root is outside."""
    doc = place / "doc"
    link(doc / "out", "../secret/shadow")
    link(doc / "back", "../doc/img/a.gif")
    link(doc / "abs", doc / "img" / "a.gif")
    scope = tree(doc)
    with pytest.raises(Refused, match="it leads out of the tree$"):
        scope.resolve(scope.root, "out")
    assert content(scope.resolve(scope.root, "back")) == b"GIF89a"
    assert content(scope.resolve(scope.root, "abs")) == b"GIF89a"
    assert not scope.resolve(scope.root, "../secret/shadow").inside


def test_loops_and_broken_links_are_link_errors(place, way):
    """A link loop is ELOOP and a broken link ENOENT, both as LinkError (not the name's own error)."""
    doc = place / "doc"
    link(doc / "a", "b")
    link(doc / "b", "a")
    link(doc / "gone", "nothing")
    scope = tree(doc)
    with pytest.raises(LinkError) as loop:
        scope.resolve(scope.root, "a")
    with pytest.raises(LinkError) as broken:
        scope.resolve(scope.root, "gone")
    with pytest.raises(FileNotFoundError):
        scope.resolve(scope.root, "missing/x")
    assert (loop.value.errno, broken.value.errno) == (errno.ELOOP, errno.ENOENT)


def test_link_into_proc_is_refused_as_a_whole(place, way):
    """/proc/self on the way to /proc/self/environ is a step; what is refused is the link
    of the name, with where it really leads."""
    link(place / "env", "/proc/self/environ")
    with pytest.raises(Refused) as caught:
        Scope().resolve(None, f"{place}/env")
    assert (caught.value.link, caught.value.target, caught.value.reason) == (
        f"{place}/env", f"/proc/{os.getpid()}/environ", "it leads into /proc")


def test_moved_directory_is_not_a_way_out(place, way):
    """A directory let go of (a deep walk holds none above it) and moved out of the tree:
    ".." from it is refused, never taken to be inside."""
    doc = place / "doc"
    (place / "secret" / "a.gif").write_bytes(b"outside")
    scope = tree(doc)
    img = scope.resolve(scope.root, "img")
    img.let_go()
    os.rename(doc / "img", place / "secret" / "img")
    with pytest.raises(OSError) as caught:
        scope.resolve(img, "../a.gif")
    assert caught.value.errno == errno.ESTALE


@pytest.mark.skipif(os.geteuid() != 0, reason="files of another user need root to make")
def test_owner_match_only_where_the_owner_may_go(open_place, way):
    """A link followed because its owner owns the target must lead where that owner may
    go: nobody's file, or nobody's directory, inside a 0700 directory of root's is refused,
    naming the directory; the same layout where nobody may enter is followed."""
    place = open_place
    closed = place / "closed"
    (closed / "svcdir").mkdir(parents=True)
    closed.chmod(0o700)
    (closed / "svc.key").write_bytes(b"nobody's, behind root's door")
    (closed / "svcdir" / "root.conf").write_bytes(b"root's, behind root's door")
    for path in (closed / "svc.key", closed / "svcdir"):
        os.chown(path, NOBODY, NOBODY)
    site = place / "site"
    site.mkdir()
    os.chown(site, NOBODY, NOBODY)
    link(site / "key", closed / "svc.key", NOBODY)
    link(site / "d", closed / "svcdir", NOBODY)
    for name in ("key", "d/root.conf"):
        with pytest.raises(Refused) as caught:
            Scope().resolve(None, f"{site}/{name}")
        assert caught.value.reason == (f"the link is owned by nobody (65534), who may not enter "
                                       f"{closed} (--follow-any-link follows it)")
    closed.chmod(0o711)
    assert content(Scope().resolve(None, f"{site}/key")) == b"nobody's, behind root's door"
