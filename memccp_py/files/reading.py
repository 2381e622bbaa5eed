"""Reading one file, safely: only a regular file, never more than its size, never a file
that changes while it is read, never a file outside its tree.

* the file is opened by :mod:`memccp_py.files.resolve`, beneath the directory that holds it, links
  followed only by the link rule; what is read is the very file that was checked;
* a file the walk saw as no link and that is a link now is not read;
* ``open`` never blocks: O_NONBLOCK (a FIFO or a device that slipped in), O_NOCTTY;
  a FIFO, socket or device is never opened at all (opening some has effects: a tape rewinds);
* the open descriptor is checked (fstat): a regular file, at most :data:`MAX_FILE_BYTES`;
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
from memccp_py.files.nodes import Node
from memccp_py.files.resolve import Refused, Scope
from memccp_py.files.walker import not_regular
from memccp_py.interrupt import pollable, wait_readable
from memccp_py.records import Found

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
    fd = pollable(stream)
    while True:
        if fd is not None:
            wait_readable(fd)  # a Ctrl-C that comes just before is not left behind the read
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


def reason(exc: Exception) -> str:
    """What a failed look-up says: "not read: link ... leads to ...", or the system's words."""
    if isinstance(exc, Refused):
        return f"not read: {exc}"
    return getattr(exc, "strerror", None) or str(exc)


def open_found(found: Found) -> Node:
    """The node of *found*, opened (a failure raises FileReadError)."""
    if found.node is not None:
        return found.node
    scope = found.scope or Scope()
    try:
        node = scope.resolve(found.base, found.name, follow=found.link)
    except (OSError, Refused) as exc:
        raise FileReadError(reason(exc)) from None
    if stat.S_ISLNK(node.st.st_mode):  # only where links are not followed: seen as a file
        raise FileReadError("not read: it became a link after the tree was read")
    return node


def _regular(mode: int) -> None:
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
        if found.stream is None:
            raise FileReadError("standard input is closed")
        try:
            return _read_stream(found.stream, limit)
        except OSError as exc:
            raise FileReadError(exc.strerror or str(exc)) from None
        except MemoryError:
            raise FileReadError("out of memory reading standard input") from None
    node = open_found(found)
    _regular(node.st.st_mode)  # a FIFO or a device is never opened
    try:
        fd = node.reopen(_FLAGS)
    except OSError as exc:
        raise FileReadError(exc.strerror or str(exc)) from None
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            _regular(before.st_mode)
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
    except MemoryError:
        raise FileReadError(f"out of memory reading its {before.st_size} bytes") from None
    finally:
        os.close(fd)
