"""Which files a run may read: the walk under -r and the link policy.

The policy, for a tree (a directory named with -r, or --docroot for --files-from names):

* only regular files are read; FIFOs, sockets and devices are skipped with a warning;
* a link is followed only when its target, fully resolved, lies inside the tree's real
  path; a link leading out of the tree is skipped with a warning (as rsync --safe-links);
* nothing under /proc, /sys or /dev is ever reached through a link, whatever the tree;
* a directory that is its own ancestor (a link loop) is not walked again;
* the walk keeps its own stack: a deep tree needs no recursion;
* a directory or entry that cannot be read is an error: named, and the run exits 1.

Files named on the command line are the user's explicit choice: their links are followed
(but never into /proc, /sys or /dev), and :mod:`memccp_py.reading` still reads only regular
files from them.
"""

from __future__ import annotations

import os
import stat
from collections import abc

#: Pseudo file systems whose files are never reached through a link.
PSEUDO_ROOTS = ("/proc", "/sys", "/dev")


_PSEUDO_PREFIXES = tuple(root + "/" for root in PSEUDO_ROOTS)


def pseudo(real: str) -> str | None:
    """The pseudo file system (/proc, /sys, /dev) the resolved path *real* lies in, or None."""
    if real.startswith(_PSEUDO_PREFIXES) or real in PSEUDO_ROOTS:
        return next(root for root in PSEUDO_ROOTS if real == root or real.startswith(root + "/"))
    return None


class Tree:
    """A boundary: the real path of a directory whose links must stay inside it."""

    __slots__ = ("root", "top", "_inside")

    def __init__(self, top: str) -> None:
        self.top = top  # as the user wrote it: paths below it are shown that way
        self.root = os.path.realpath(top)
        self._inside = self.root.rstrip("/") + "/"

    def refuses(self, real: str) -> str | None:
        """Why a link resolving to *real* must not be followed, or None."""
        into = pseudo(real)
        if into:
            return "it leads into " + into
        if real != self.root and not real.startswith(self._inside):
            return "it leads out of the tree"
        return None


class Found:
    """A regular file to copy: ``path`` as shown and keyed, ``real`` what to open,
    ``tree`` the boundary it must stay in (None: named by the user); ``rel``: its path
    below --docroot when the walk knows it, else None; ``seen``: (st_dev, st_ino) of the
    regular file the walk saw at ``real`` inside the tree, else None; ``at``: the open
    directory holding it and its name there, while the walk is on that directory."""

    __slots__ = ("path", "real", "tree", "rel", "seen", "at")

    def __init__(self, path: str, real: str | None = None, tree: Tree | None = None,
                 rel: str | None = None, seen: tuple[int, int] | None = None,
                 at: tuple[DirHandle, str] | None = None) -> None:
        self.path = path
        self.real = path if real is None else real
        self.tree = tree
        self.rel = rel
        self.seen = seen
        self.at = at  # (directory, name): open it there while the walk is on that directory


class Skipped:
    """Something not copied: ``path``, ``reason``; ``error`` True makes the run fail."""

    __slots__ = ("path", "reason", "error")

    def __init__(self, path: str, reason: str, error: bool = False) -> None:
        self.path = path
        self.reason = reason
        self.error = error


def not_regular(mode: int) -> str:
    """Why a file of *mode* is not read: "not a regular file (a FIFO)"."""
    kind = ("a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "a directory" if stat.S_ISDIR(mode) else "a special file")
    return f"not a regular file ({kind})"


class DirHandle:
    """An open directory of the walk: files found in it are opened relative to it (so a
    directory swapped for a link after the walk looked cannot redirect the open). ``fd`` is
    None once the walk has moved on."""

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd: int | None = fd

    def close(self) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


def _open_dir(real: str, node: tuple[int, int]) -> DirHandle:
    """Open the directory *real*, which must still be the one (device, inode) seen."""
    fd = os.open(real, _DIR_FLAGS)
    info = os.fstat(fd)
    if (info.st_dev, info.st_ino) != node:
        os.close(fd)
        raise OSError(0, "it changed while the tree was read")
    return DirHandle(fd)


def walk(top: str, selection=None, below: str = "", tree: Tree | None = None
         ) -> abc.Iterator[Found | Skipped]:
    """Every regular file below the directory *top*, in name order, a directory's own files
    before its subdirectories; links, special files and errors as the policy says.

    *selection* (--include/--exclude) picks files and the directories walked, by their path
    below the tree, *below* standing before *top*'s own (where *top* lies below --docroot);
    a link is followed only when its target is picked too. *tree*: the boundary (default
    *top* itself). Each directory is walked once: under its path in the tree, else under
    the first link to it; links to a directory walked already are skipped with a warning,
    so links cannot make the walk grow beyond the tree."""
    tree = tree or Tree(top)
    try:
        real_top = os.path.realpath(top)
        info = os.stat(real_top)
    except OSError as exc:
        yield Skipped(top, exc.strerror or str(exc), error=True)
        return
    refusal = tree.refuses(real_top) if real_top != tree.root else None
    if refusal:
        yield Skipped(top, f"not copied: it resolves to {real_top} and {refusal} "
                           f"({tree.top})", error=True)
        return
    visited: set[tuple[int, int]] = set()
    # each: path as shown, path below the tree, real path, (dev, ino)
    stack = [(top, below, real_top, (info.st_dev, info.st_ino))]
    links: list[tuple[str, str, str, tuple[int, int]]] = []  # directories reached by a link
    while stack or links:
        if not stack:
            shown, rel, real, node = links.pop(0)
            if node in visited:
                yield Skipped(shown, f"skipped link to {real}: that directory is copied already")
            else:
                stack.append((shown, rel, real, node))
            continue
        shown_dir, rel_dir, real_dir, node = stack.pop()
        if node in visited:  # below a directory reached by a link, and reached before
            yield Skipped(shown_dir, f"skipped: {real_dir} is copied already")
            continue
        visited.add(node)
        try:
            handle = _open_dir(real_dir, node)
            with os.scandir(handle.fd) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as exc:
            yield Skipped(shown_dir, f"cannot read directory: {exc.strerror or exc}", error=True)
            continue
        subdirs = []
        shown_dir = shown_dir if shown_dir.endswith("/") else shown_dir + "/"
        real_dir = real_dir if real_dir.endswith("/") else real_dir + "/"
        rel_dir = rel_dir + "/" if rel_dir else ""
        try:
            for entry in entries:
                found = _entry(entry, shown_dir, rel_dir, real_dir, tree, selection, handle,
                               subdirs, links)
                if found is not None:
                    yield found
        finally:
            handle.close()
        stack.extend(reversed(subdirs))


def _entry(entry, shown_dir: str, rel_dir: str, real_dir: str, tree: Tree, selection,
           handle: DirHandle, subdirs: list, links: list):
    """Sort one directory entry: a Found or Skipped to yield (returned), or a subdirectory or
    link to walk later (appended to *subdirs* or *links*; None returned). The directory
    paths end with "/" (*rel_dir* is "" at the top)."""
    shown = shown_dir + entry.name
    rel = rel_dir + entry.name
    real = real_dir + entry.name
    link = False
    try:
        if entry.is_symlink():
            link, real = True, os.path.realpath(real)
            refusal = tree.refuses(real)
            if refusal:
                return Skipped(shown, f"skipped link to {real}: {refusal}")
            info = os.stat(real)
        else:
            info = entry.stat(follow_symlinks=False)
    except FileNotFoundError:
        return Skipped(shown, "skipped broken link" if link else
                       "skipped: vanished while the tree was read")
    except OSError as exc:
        return Skipped(shown, exc.strerror or str(exc), error=True)
    is_dir = stat.S_ISDIR(info.st_mode)
    if not is_dir and not stat.S_ISREG(info.st_mode):
        return Skipped(shown, "skipped, " + not_regular(info.st_mode))
    if selection is not None:
        if not selection.wants(rel, is_dir):
            return None
        if link and not selection.wants_path(os.path.relpath(real, tree.root), is_dir):
            return None  # the target is left out: so is the link to it
    node = (info.st_dev, info.st_ino)
    if is_dir:
        (links if link else subdirs).append((shown, rel, real, node))
        return None
    return Found(shown, real, tree, rel, node, None if link else (handle, entry.name))
