"""Which files to copy and under which keys: positional FILEs, --files-from
lists, and the key rules (--key, --basename/--relative/--absolute, --base,
--prefix, --escape)."""

from __future__ import annotations

import io
import os
from collections import abc

from memccp_py.copier import Job
from memccp_py.keys import key_for_path, nginx_escape, uri_key


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
              base: str | None = None, prefix: bytes = b"", escape: str = "none") -> abc.Iterator[Job]:
    """A Job for every path, with the key the options give it."""
    for path in paths:
        problem = None
        if key is not None:
            name = key
        elif base is not None:
            try:
                name = uri_key(path, base)
            except ValueError as exc:
                name, problem = b"", str(exc)
        else:
            name = key_for_path(path, mode)
        name = prefix + name
        yield Job(path, nginx_escape(name) if escape == "nginx" else name, problem, name)


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
