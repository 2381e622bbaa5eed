"""Reading one file, safely: only a regular file, never more than its size, never a file
that changes while it is read, never a file outside its tree.

* ``open`` never blocks: O_NONBLOCK (a FIFO or a device that slipped in), O_NOCTTY;
  O_NOFOLLOW for files found in a tree, whose links the walker resolved already;
* the open descriptor is checked (fstat): a regular file, at most :data:`MAX_FILE_BYTES`;
* for a file found in a tree, the open descriptor must be the very file (device and
  inode) the walk saw inside the tree, or else the kernel's own name of it must lie inside
  the tree (a link or a directory swapped in after the walk looked is caught here);
* at most st_size bytes are read; more bytes after them, fewer than st_size, or another
  size or modification time afterwards is "file changed as we read it" (as tar says), and
  nothing is stored.
"""

from __future__ import annotations

import errno
import os
import stat
from collections import abc

from memccp_py.errors import FileReadError
from memccp_py.walker import Found, not_regular, pseudo

#: No file larger than this is read: memcached's item size cannot exceed 1 GiB.
MAX_FILE_BYTES = 1 << 30
#: Files smaller than this are read in one call; larger ones into one buffer, never copied.
SMALL_FILE_BYTES = 1 << 20

_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0)


class Stdin(Found):
    """The FILE ``-``: standard input, read to its end (at most the item limit)."""

    __slots__ = ("stream",)

    def __init__(self, stream) -> None:
        super().__init__("-")
        self.stream = stream


def _read_stream(stream, limit: int) -> bytes:
    chunks, size = [], 0
    read = getattr(stream, "read1", stream.read)
    while True:
        chunk = read(min(1 << 20, limit + 1 - size))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise FileReadError(f"standard input has more than {limit} bytes, more than "
                                "memcached can store")


def _read_into(fd: int, size: int) -> bytearray:
    """At most *size* bytes of *fd* in one buffer of that size (fewer if the file shrank)."""
    data = bytearray(size)
    done = 0
    with memoryview(data) as view:
        while done < size:
            got = os.readv(fd, [view[done:]])
            if not got:
                break
            done += got
    if done < size:
        del data[done:]
    return data


def _opened_as(fd: int) -> str | None:
    """What the kernel says the descriptor *fd* is (its real path), None where /proc is absent."""
    try:
        name = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None
    return name[:-len(" (deleted)")] if name.endswith(" (deleted)") else name


def _check_place(fd: int, found: Found) -> None:
    real = _opened_as(fd)
    if real is None:
        return
    if found.tree is not None:
        refusal = found.tree.refuses(real)
        if refusal:
            raise FileReadError(f"not read: it resolves to {real} and {refusal}")
    else:
        into = pseudo(real)
        if into and not pseudo(os.path.abspath(found.real)):
            raise FileReadError(f"not read: a link into {into} ({real})")


def _regular(mode: int) -> None:
    if stat.S_ISLNK(mode):  # only seen where links are not followed: in a tree
        raise FileReadError("not read: it became a link after the tree was read")
    if stat.S_ISDIR(mode):
        raise FileReadError(os.strerror(errno.EISDIR))  # as open() says it
    if not stat.S_ISREG(mode):
        raise FileReadError(not_regular(mode))


def read_file(found: Found | str, limit: int = MAX_FILE_BYTES,
              check_size: abc.Callable[[int], None] | None = None) -> bytes | bytearray:
    """The bytes of a regular file; FileReadError with a short reason if they cannot be had.
    *check_size(size)*, called before a byte is read, may refuse the file by raising."""
    if isinstance(found, str):
        found = Found(found)
    if isinstance(found, Stdin):
        try:
            return _read_stream(found.stream, limit)
        except OSError as exc:
            raise FileReadError(exc.strerror or str(exc)) from None
    in_tree = found.tree is not None
    try:  # a device is never opened: opening some has effects (a tape rewinds)
        if found.at is not None and found.at[0].fd is not None:
            # in the very directory the walk listed, by name, no link followed
            fd = os.open(found.at[1], _FLAGS | os.O_NOFOLLOW, dir_fd=found.at[0].fd)
        else:
            if not found.seen:  # the walk looked already; fstat below sees what was opened
                _regular(os.stat(found.real, follow_symlinks=not in_tree).st_mode)
            fd = os.open(found.real, _FLAGS | (os.O_NOFOLLOW if in_tree else 0))
    except OSError as exc:
        if exc.errno == errno.ELOOP and in_tree:
            raise FileReadError("not read: it became a link after the tree was read") from None
        raise FileReadError(exc.strerror or str(exc)) from None
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            _regular(before.st_mode)  # it was swapped since: say what it is now
        if found.seen != (before.st_dev, before.st_ino):  # not the very file the walk saw
            _check_place(fd, found)
        size = before.st_size
        if size > limit:
            raise FileReadError(f"file is {size} bytes, larger than memcached can store")
        if check_size is not None:
            check_size(size)
        if size < SMALL_FILE_BYTES:  # one read, one byte more than the size: growth shows
            data = os.read(fd, size + 1)
            changed = len(data) != size
        else:
            data = _read_into(fd, size)
            changed = os.read(fd, 1) != b""
        after = os.fstat(fd)
        if changed or after.st_size != size or after.st_mtime_ns != before.st_mtime_ns:
            raise FileReadError("file changed as we read it: not stored")
        return data
    except OSError as exc:
        raise FileReadError(exc.strerror or str(exc)) from None
    finally:
        os.close(fd)
