"""Whether the code a warm helper runs has changed on disk (an upgrade, an edited checkout).

The helper watches its code (the files of memccp_py and bmemcached, their directories and
the interpreter) with inotify, so that asking costs one poll of a descriptor its workers
share, and the helper itself wakes up and retires when something changes. Where inotify
cannot be had (no ctypes, no watches left), it compares the files' identities (device,
inode, time, size) with those taken at start.
"""

from __future__ import annotations

import os
import select
import sys

#: A watched file: written, its metadata or link count changed (replaced by a rename),
#: moved or deleted. A watched directory: an entry created, deleted or moved in or out.
_FILE_EVENTS = 0x002 | 0x004 | 0x400 | 0x800  # MODIFY ATTRIB DELETE_SELF MOVE_SELF
_DIRECTORY_EVENTS = _FILE_EVENTS | 0x040 | 0x080 | 0x100 | 0x200  # MOVED_FROM/TO CREATE DELETE
_IN_DONT_FOLLOW, _IN_CLOEXEC, _IN_NONBLOCK = 0x02000000, 0o2000000, 0o4000
#: A file's change time comes from a coarse clock: it may read this much before the change.
_CLOCK_SLACK_NS = 50_000_000


def code_files(packages: tuple[str, ...] = ("memccp_py", "bmemcached")) -> list[str]:
    """The files and directories of the code this process runs, and the interpreter (the
    file, and the link that named it: /usr/bin/python3 may come to name another)."""
    paths = {sys.executable, os.path.realpath(sys.executable)}
    for name, module in list(sys.modules.items()):
        location = getattr(module, "__file__", None)
        if name.partition(".")[0] in packages and location:
            paths.update((location, os.path.dirname(location)))
    return sorted(paths)


def code_snapshot(paths: list[str]) -> list:
    """Identity of PATHS: when it changes, a new version was installed."""
    snapshot = []
    for path in paths:
        try:
            st = os.stat(path)
            snapshot.append((st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size))
        except OSError:
            snapshot.append(None)
    return snapshot


def _inotify(paths: list[str]) -> int | None:
    """An inotify descriptor watching PATHS, or None if one cannot be had."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        fd = libc.inotify_init1(_IN_CLOEXEC | _IN_NONBLOCK)
    except (ImportError, OSError, AttributeError):
        return None
    if fd < 0:
        return None
    for path in paths:
        events = _DIRECTORY_EVENTS if os.path.isdir(path) else _FILE_EVENTS
        if os.path.islink(path):
            events |= _IN_DONT_FOLLOW
        if libc.inotify_add_watch(fd, os.fsencode(path), events) < 0:
            os.close(fd)
            return None
    return fd


def _changed_since(paths: list[str], since_ns: int) -> bool:
    """Whether a file of PATHS (or a link) changed after SINCE_NS (time.time_ns())."""
    for path in paths:
        try:
            if os.lstat(path).st_ctime_ns > since_ns - _CLOCK_SLACK_NS:
                return True
        except OSError:
            return True
    return False


class CodeWatch:
    """Started once the code is imported; :meth:`changed` says whether it changed since
    *since_ns* (time.time_ns() before the imports; default: now)."""

    def __init__(self, paths: list[str] | None = None, use_inotify: bool = True,
                 since_ns: int | None = None) -> None:
        self.paths = code_files() if paths is None else paths
        self.snapshot = code_snapshot(self.paths)
        self.fd = _inotify(self.paths) if use_inotify else None
        # what changed between the imports and the watch
        self._stale = since_ns is not None and _changed_since(self.paths, since_ns)

    def fileno(self) -> int | None:
        """A descriptor that becomes readable when the code changes (None: no inotify).
        Nobody reads it: every worker forked from the helper sees the same events."""
        return self.fd

    def changed(self) -> bool:
        if self._stale:
            return True
        if self.fd is None:
            return code_snapshot(self.paths) != self.snapshot
        return bool(select.select([self.fd], [], [], 0)[0])

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
