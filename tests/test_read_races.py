"""A file or directory swapped, grown or truncated while memccp reads it: never stored in
part, never read outside its tree."""

import os

import pytest

from memccp_py.files import reading
from memccp_py.errors import FileReadError
from memccp_py.records import Found
from memccp_py.files.nodes import Node
from memccp_py.files.sources import all_paths


def walk(top: str):
    """The entries of -r *top*, as a run walks it."""
    return all_paths([top], [], False, recursive=True)


@pytest.fixture
def tree(tmp_path):
    """doc/sub/page.html inside the tree; outside/sub/page.html and outside/secret beside it."""
    doc, outside = tmp_path / "doc", tmp_path / "outside"
    for top, text in ((doc, b"public"), (outside, b"secret")):
        (top / "sub").mkdir(parents=True)
        (top / "sub" / "page.html").write_bytes(text)
    (outside / "secret").write_bytes(b"secret")
    return doc, outside


def found(doc, rel: str) -> Found:
    """The walker's entry for *rel* below *doc*."""
    entries = [e for e in walk(str(doc)) if e.path == os.path.join(str(doc), rel)]
    assert len(entries) == 1 and isinstance(entries[0], Found), entries
    return entries[0]


def test_file_swapped_for_a_link_after_the_walk(tree):
    """A file the walker saw, replaced by a link to a secret before it is read: refused."""
    doc, outside = tree
    entry = found(doc, "sub/page.html")
    os.unlink(doc / "sub" / "page.html")
    os.symlink(outside / "secret", doc / "sub" / "page.html")
    with pytest.raises(FileReadError, match="^not read: it became a link after the tree was read$"):
        reading.read_file(entry)


def test_directory_swapped_for_a_link_after_the_walk(tree):
    """A directory above a file the walker saw, replaced by a link out of the tree after the
    walk has moved on: the file is opened in the directory the walk listed (held open by
    the entry), so the file read is the one in the tree, never the one outside."""
    doc, outside = tree
    entry = found(doc, "sub/page.html")  # the walk is over
    os.rename(doc / "sub", doc / "old")
    os.symlink(outside / "sub", doc / "sub")
    assert bytes(reading.read_file(entry)) == b"public"


@pytest.fixture(params=["one read", "into a buffer"])
def read_call(request, monkeypatch):
    """The system call that reads the bytes: os.read for small files, os.readv into one
    buffer for large ones (forced here by a small-file limit of 0)."""
    if request.param == "into a buffer":
        monkeypatch.setattr(reading, "SMALL_FILE_BYTES", 0)
        return "readv"
    return "read"


def test_file_truncated_while_read(tree, monkeypatch, read_call):
    """A file truncated between its size and its bytes is 'file changed', not half stored."""
    doc, _ = tree
    page = doc / "sub" / "page.html"
    real_call = getattr(os, read_call)

    def truncating(fd, arg):
        os.truncate(page, 2)
        return real_call(fd, arg)

    monkeypatch.setattr(os, read_call, truncating)
    with pytest.raises(FileReadError, match="^file changed as we read it: not stored$"):
        reading.read_file(found(doc, "sub/page.html"))


def test_file_growing_while_read(tree, monkeypatch, read_call):
    """A file that grows while read is 'file changed', and at most one byte more than its
    size is ever read."""
    doc, _ = tree
    page = doc / "sub" / "page.html"
    real_read, real_readv, asked = os.read, os.readv, []

    def growing_read(fd, size):
        with open(page, "ab") as handle:
            handle.write(b"x" * 100000)
        asked.append(size)
        return real_read(fd, size)

    def growing_readv(fd, buffers):
        with open(page, "ab") as handle:
            handle.write(b"x" * 100000)
        asked.append(sum(len(b) for b in buffers))
        return real_readv(fd, buffers)

    monkeypatch.setattr(os, "read", growing_read)
    monkeypatch.setattr(os, "readv", growing_readv)
    with pytest.raises(FileReadError, match="^file changed as we read it: not stored$"):
        reading.read_file(found(doc, "sub/page.html"))
    assert sum(asked) <= len(b"public") + 1


def test_unchanged_file_is_read_whole(tree, read_call):
    """The control case: a quiet file is read, byte for byte, either way."""
    doc, _ = tree
    assert bytes(reading.read_file(found(doc, "sub/page.html"))) == b"public"


def test_unreadable_directory_is_an_error(tree, monkeypatch):
    """A directory that cannot be listed is an error entry (the run fails), the walk goes on."""
    doc, _ = tree
    (doc / "zz.txt").write_bytes(b"z")
    real_listing = Node.listing

    def listing(node):
        if node.kernel_name().endswith("/sub"):
            raise PermissionError(13, "Permission denied")
        return real_listing(node)

    monkeypatch.setattr(Node, "listing", listing)
    entries = [(type(e).__name__, e.path, getattr(e, "reason", None), getattr(e, "error", None))
               for e in walk(str(doc))]
    assert entries == [("Found", f"{doc}/zz.txt", None, None),
                       ("Skipped", f"{doc}/sub", "cannot read directory: Permission denied", True)]


def test_directory_swapped_while_the_walk_is_on_it(tree):
    """While the walk is on a directory, its files are opened in that very directory (by
    its descriptor): swapping it for a link out of the tree changes nothing that is read."""
    doc, outside = tree
    files = (e for e in walk(str(doc)) if e.path.endswith("page.html"))
    entry = next(files)  # the walk now holds doc/sub open
    os.rename(doc / "sub", doc / "old")
    os.symlink(outside / "sub", doc / "sub")
    assert bytes(reading.read_file(entry)) == b"public"
    files.close()
