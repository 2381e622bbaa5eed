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
    regular file the walk saw at ``real`` inside the tree, else None."""

    __slots__ = ("path", "real", "tree", "rel", "seen")

    def __init__(self, path: str, real: str | None = None, tree: Tree | None = None,
                 rel: str | None = None, seen: tuple[int, int] | None = None) -> None:
        self.path = path
        self.real = path if real is None else real
        self.tree = tree
        self.rel = rel
        self.seen = seen


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


def walk(top: str, selected: abc.Callable[[str, bool], bool] | None = None,
         below: str = "") -> abc.Iterator[Found | Skipped]:
    """Every regular file below the directory *top*, in name order, a directory's own files
    before its subdirectories; links, special files and errors as the policy says.

    *selected(rel, is_dir)* says whether a file or directory is wanted (--include/--exclude);
    *rel* is its path below *top*, after *below* (where *top* stands below --docroot); an
    unwanted directory is not walked."""
    tree = Tree(top)
    try:
        root_stat = os.stat(tree.root)
    except OSError as exc:
        yield Skipped(top, exc.strerror or str(exc), error=True)
        return
    # each: path as shown, path below the tree, real path, (dev, ino) of it and those above
    stack = [(top, below, tree.root, frozenset({(root_stat.st_dev, root_stat.st_ino)}))]
    while stack:
        shown_dir, rel_dir, real_dir, ancestors = stack.pop()
        try:
            with os.scandir(real_dir) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as exc:
            yield Skipped(shown_dir, f"cannot read directory: {exc.strerror or exc}", error=True)
            continue
        subdirs = []
        for entry in entries:
            shown = os.path.join(shown_dir, entry.name)
            rel = rel_dir + "/" + entry.name if rel_dir else entry.name
            real = entry.path
            try:
                if entry.is_symlink():
                    real = os.path.realpath(real)
                    refusal = tree.refuses(real)
                    if refusal:
                        yield Skipped(shown, f"skipped link to {real}: {refusal}")
                        continue
                    info = os.stat(real)
                else:
                    info = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                yield Skipped(shown, "skipped broken link" if real != entry.path else
                              "skipped: vanished while the tree was read")
                continue
            except OSError as exc:
                yield Skipped(shown, exc.strerror or str(exc), error=True)
                continue
            if stat.S_ISDIR(info.st_mode):
                node = (info.st_dev, info.st_ino)
                if node in ancestors:
                    yield Skipped(shown, "skipped directory loop: a link back to a directory above")
                elif selected is None or selected(rel, True):
                    subdirs.append((shown, rel, real, ancestors | {node}))
            elif not stat.S_ISREG(info.st_mode):
                yield Skipped(shown, "skipped, " + not_regular(info.st_mode))
            elif selected is None or selected(rel, False):
                yield Found(shown, real, tree, rel, (info.st_dev, info.st_ino))
        stack.extend(reversed(subdirs))
