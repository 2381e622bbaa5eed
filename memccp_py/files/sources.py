"""Which files to copy and under which keys: positional FILEs (directories walked with -r),
--files-from lists, --include/--exclude, and the key rules (--key, --basename/--relative/
--absolute, --docroot, --prefix, --suffix, --escape, --index)."""

from __future__ import annotations

import io
import os
from collections import abc

from memccp_py.errors import FileReadError
from memccp_py.files.keys import directory_uri, key_for_path, nginx_escape, uri_key
from memccp_py.files.reading import Stdin, open_found, reason
from memccp_py.files.nodes import Node
from memccp_py.files.resolve import Refused, Scope
from memccp_py.files.selection import Selection
from memccp_py.files.walker import walk
from memccp_py.interrupt import pollable, wait_readable
from memccp_py.records import Found, Job, Notice, Skipped
from memccp_py.report import show

#: No name in a --files-from list is longer (bytes): a longer one is an error, read no further.
MAX_NAME_BYTES = 4096


def read_list(stream: io.BufferedIOBase, null: bool) -> abc.Iterator[str | Skipped]:
    """File names from a --files-from stream: one a line, or NUL-separated with --null; a
    name over MAX_NAME_BYTES is a Skipped error (and what follows it up to the next
    separator is dropped, a little at a time)."""
    sep = b"\0" if null else b"\n"
    rest = b""
    too_long = False
    read = getattr(stream, "read1", stream.read)  # what is there now: a pipe may pause
    fd = pollable(stream)
    blocking = fd is not None and os.get_blocking(fd)
    while True:
        if blocking:
            wait_readable(fd)  # (read1 on an empty buffer reads the pipe itself: none is kept)
        chunk = read(1 << 16)
        if chunk is None:  # a FIFO read without blocking: nothing yet
            wait_readable(fd)
            continue
        if not chunk:
            break
        parts = (rest + chunk).split(sep)
        rest = parts.pop()
        for part in parts:
            if too_long:
                too_long = False  # the end of the long name
            elif part:
                yield os.fsdecode(part)
        if len(rest) > MAX_NAME_BYTES:
            if not too_long:
                yield Skipped(show(rest[:64]) + "...", f"a name in the list is longer than "
                              f"{MAX_NAME_BYTES} bytes: left out", error=True)
            rest, too_long = b"", True
    if rest and not too_long:
        yield os.fsdecode(rest)


def _place(path: str, base: str | None, scope: Scope) -> tuple[Node | None, str]:
    """Where *path* is resolved from: below --docroot, its path there beneath the docroot's
    held directory; else from / or the working directory."""
    if scope.root is not None and base is not None and path:
        rel = os.path.relpath(path, base)
        if rel != os.pardir and not rel.startswith(os.pardir + os.sep):
            return scope.root, rel
    return None, path


def _listed(name: str, base: str | None, scope: Scope) -> Found | Skipped:
    """A --files-from name, to be opened under *scope* (beneath --docroot when below it)."""
    if "\0" in name:
        return Skipped(name.replace("\0", "\\x00"),
                       "file name contains a NUL byte (for NUL-separated names use -0)", error=True)
    return Found(name, scope, *_place(name, base, scope))


def _tree(path: str, base: str | None, scope: Scope, selection: Selection | None
          ) -> abc.Iterator[Found | Skipped]:
    """-r FILE: the files below the directory *path* (beneath --docroot when below it), or
    *path* itself when it is no directory."""
    start, name = _place(path, base, scope)
    try:
        node = scope.resolve(start, name)
    except Refused as refused:
        where = f" ({scope.top})" if scope.root is not None else ""
        yield Skipped(path, f"not copied: it resolves to {refused.target} and {refused.reason}{where}",
                      error=True)
        return
    except OSError as exc:
        yield Skipped(path, reason(exc), error=True)
        return
    if not node.is_dir:
        if selection is None or selection.wants_path(_below(path, base)):
            yield Found(path, scope, node=node)
        return
    if scope.root is None:
        tree, below = scope.tree(node, path), ""
    elif not node.inside:
        yield Skipped(path, f"not copied: it resolves to {node.kernel_name()} and it leads out "
                            f"of the tree ({scope.top})", error=True)
        return
    else:
        tree, below = scope, "" if name == os.curdir else os.path.normpath(name)
    if selection is None or selection.wants_path(_below(path, base), True):
        yield from walk(tree, node, path, selection, below)


def _below(path: str, base: str | None) -> str:
    """*path* as matched by --include/--exclude: below --docroot when given, else as written."""
    return os.path.relpath(path, base) if base is not None and path else path


def all_paths(files: abc.Sequence[str | Stdin], lists: abc.Sequence[io.BufferedIOBase], null: bool,
              recursive: bool = False, selection: Selection | None = None,
              base: str | None = None, scope: Scope | None = None) -> abc.Iterator[Found | Skipped]:
    """The positional FILEs (directories walked with *recursive*), then the --files-from names;
    of those, only what *selection* (--include/--exclude) picks, by their path below the
    tree: a file under an excluded directory is left out wherever its name comes from.

    Every name is opened under *scope*: links followed by its rule (default: the caller's
    rule, no tree). With *base* (--docroot; *scope* then bounded by its held directory), a
    name below it is opened beneath it. Files found in a directory walked with -r stay
    inside the docroot, else inside that directory."""
    scope = scope or Scope()
    for path in files:
        if isinstance(path, Stdin):
            yield path
        elif recursive:
            yield from _tree(path, base, scope, selection)
        elif selection is None or selection.wants_path(_below(path, base)):
            yield Found(path, scope, *_place(path, base, scope))
    for stream in lists:
        for name in read_list(stream, null):
            if isinstance(name, Skipped):
                yield name
            elif selection is None or selection.wants_path(_below(name, base)):
                yield _listed(name, base, scope)


def make_jobs(entries: abc.Iterable[Found | Skipped | str], *, key: bytes | None = None,
              mode: str = "basename", base: str | None = None, prefix: bytes = b"",
              escape: str = "none", unique_keys: bool = False, suffix: bytes = b"",
              index: abc.Sequence[str] = ()) -> abc.Iterator[Job | Notice]:
    """A Job for every file, with the key the options give it; a Notice for what is skipped.
    With *base* and *index*, a second Job for an index file, keyed by its directory's URI
    (``/docs/``, ``/``).

    Two files with one key: a warning naming both, the last is stored (with *unique_keys*:
    the second is an error and is not stored)."""
    first: dict[bytes, str] = {}
    for entry in entries:
        if type(entry) is str:
            entry = Found(entry)
        elif type(entry) is Skipped:
            if entry.error:
                yield Job(entry.path, b"", entry.reason)
            else:
                yield Notice(entry.path, entry.reason)
            continue
        path, problem, uri = entry.path, None, None
        if key is not None:
            name = key
        elif isinstance(entry, Stdin):
            name = b"-"  # as C memccp: standard input is stored under "-"
        elif base is not None and entry.rel is not None:  # the walk knows it: no path arithmetic
            if entry.rel == os.pardir or entry.rel.startswith(os.pardir + os.sep):
                name, problem = b"", f"not below --docroot {base}"
            else:
                name = uri = b"/" + os.fsencode(entry.rel)
        elif base is not None:
            try:
                name = uri = uri_key(path, base)
            except ValueError as exc:
                name, problem = b"", str(exc)
        elif mode == "absolute":  # the real path of the very file read, not a look-up of its own
            name, problem = _real_key(entry)
        else:
            name = key_for_path(path, mode)
        names = (prefix + name + suffix,) if prefix or suffix else (name,)
        if uri is not None and index and serves_directory(entry.path, index):
            names += (prefix + directory_uri(uri) + suffix,)
        for name in names:
            stored = nginx_escape(name) if escape == "nginx" else name
            job_problem = problem
            if problem is None and key is None:
                earlier = first.get(stored)
                if earlier is None:
                    first[stored] = path
                else:
                    same = f"same key '{show(stored)}' as {show(os.fsencode(earlier))}"
                    if unique_keys:
                        job_problem = same + ": not stored (--unique-keys)"
                    else:
                        yield Notice(path, same + ": the last one is stored" +
                                     (" (--docroot DIR keys files by their path)" if base is None else ""))
            yield Job(path, stored, job_problem, name, entry)


def _real_key(entry: Found) -> tuple[bytes, str | None]:
    """--absolute: the file's real path as the kernel names the file opened for it (kept
    open: the one read is that one), or a problem."""
    try:
        entry.node = open_found(entry)
    except FileReadError as exc:
        return b"", str(exc)
    real = entry.node.kernel_name()
    return (os.fsencode(real), None) if real is not None else (key_for_path(entry.path, "absolute"), None)


def serves_directory(path: str, index: abc.Sequence[str]) -> bool:
    """Whether *path* is what nginx's ``index NAMES`` serves for its directory: its base
    name is one of the names, it is a readable file, and no name listed before it exists
    there."""
    directory, name = os.path.split(path)
    if name not in index or not os.path.isfile(path) or not os.access(path, os.R_OK):
        return False  # a file that cannot be copied is reported once, for its own key
    earlier = index[:index.index(name)]
    return not any(os.path.isfile(os.path.join(directory, other)) for other in earlier)
