"""Which files to copy and under which keys: positional FILEs, --files-from
lists, and the key rules (--key, --basename/--relative/--absolute, --base,
--prefix, --suffix, --escape, --index)."""

from __future__ import annotations

import io
import os
from collections import abc

from memccp_py.copier import Job
from memccp_py.keys import directory_uri, key_for_path, nginx_escape, uri_key


def read_list(stream: io.BufferedIOBase, null: bool) -> abc.Iterator[str]:
    """File names from a --files-from stream: one a line, or NUL-separated with --null."""
    sep = b"\0" if null else b"\n"
    rest = b""
    read = getattr(stream, "read1", stream.read)  # what is there now: a pipe may pause
    while True:
        chunk = read(1 << 16)
        if not chunk:
            break
        parts = (rest + chunk).split(sep)
        rest = parts.pop()
        for part in parts:
            if part:
                yield os.fsdecode(part)
    if rest:
        yield os.fsdecode(rest)


def make_jobs(paths: abc.Iterable[str], *, key: bytes | None = None, mode: str = "basename",
              base: str | None = None, prefix: bytes = b"", escape: str = "none",
              suffix: bytes = b"", index: abc.Sequence[str] = ()) -> abc.Iterator[Job]:
    """A Job for every path, with the key the options give it; with *base* and *index*, a
    second Job for an index file, keyed by its directory's URI (``/docs/``, ``/``)."""
    for path in paths:
        problem = uri = None
        if key is not None:
            name = key
        elif base is not None:
            try:
                name = uri = uri_key(path, base)
            except ValueError as exc:
                name, problem = b"", str(exc)
        else:
            name = key_for_path(path, mode)
        yield _job(path, prefix + name + suffix, problem, escape)
        if uri is not None and index and serves_directory(path, index):
            yield _job(path, prefix + directory_uri(uri) + suffix, None, escape)


def _job(path: str, name: bytes, problem: str | None, escape: str) -> Job:
    return Job(path, nginx_escape(name) if escape == "nginx" else name, problem, name)


def serves_directory(path: str, index: abc.Sequence[str]) -> bool:
    """Whether *path* is what nginx's ``index NAMES`` serves for its directory: its base
    name is one of the names, it is a readable file, and no name listed before it exists
    there."""
    directory, name = os.path.split(path)
    if name not in index or not os.path.isfile(path) or not os.access(path, os.R_OK):
        return False  # a file that cannot be copied is reported once, for its own key
    earlier = index[:index.index(name)]
    return not any(os.path.isfile(os.path.join(directory, other)) for other in earlier)


def walk(path: str) -> abc.Iterator[str]:
    """*path* itself, or, for a directory, every file below it in name order."""
    if not os.path.isdir(path):
        yield path
        return
    for top, dirs, names in os.walk(path):
        dirs.sort()
        for name in sorted(names):
            yield os.path.join(top, name)


def all_paths(files: abc.Sequence[str], lists: abc.Sequence[io.BufferedIOBase], null: bool,
              recursive: bool = False) -> abc.Iterator[str]:
    """The positional FILEs (directories walked with *recursive*), then the --files-from names."""
    for path in files:
        if recursive:
            yield from walk(path)
        else:
            yield path
    for stream in lists:
        yield from read_list(stream, null)
