"""Which files a run may read: the walk under -r, beneath held directories.

The policy, for a tree (a directory named with -r, or --docroot for every name below it):

* every directory is listed, and every entry opened, relative to the descriptor of the
  directory holding it, never by a path: a directory swapped for a link while the walk
  runs changes nothing it reads;
* only regular files are read; FIFOs, sockets and devices are skipped with a warning;
* a link is followed by the rule of :mod:`memccp_py.files.resolve`: only where what it leads to
  lies inside the tree (as rsync --safe-links), is owned by the link's owner (unless the
  link is root's or the caller's, or --follow-any-link), and is not in /proc, /sys or /dev;
  any other link is skipped with a warning;
* a directory that is its own ancestor (a link loop) is not walked again;
* the walk keeps its own stack: a deep tree needs no recursion;
* a directory or entry that cannot be read is an error: named, and the run exits 1.
"""

from __future__ import annotations

import errno
import os
import stat
from collections import abc, deque

from memccp_py.files.nodes import LinkError, Node
from memccp_py.files.resolve import Refused, Scope
from memccp_py.records import Found, Skipped


def not_regular(mode: int) -> str:
    """Why a file of *mode* is not read: "not a regular file (a FIFO)"."""
    kind = ("a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "a directory" if stat.S_ISDIR(mode) else "a special file")
    return f"not a regular file ({kind})"


def _shown(node: Node) -> str:
    return node.kernel_name() or "a directory"


def walk(scope: Scope, top: Node, shown_top: str, selection=None, below: str = ""
         ) -> abc.Iterator[Found | Skipped]:
    """Every regular file below the directory *top* (opened already, inside *scope*'s tree),
    in name order, a directory's own files before its subdirectories; links, special files
    and errors as the policy says. *shown_top*: *top* as the user wrote it.

    *selection* (--include/--exclude) picks files and the directories walked, by their path
    below the tree, *below* standing before *top*'s own (where *top* lies below --docroot);
    a link is followed only when its target is picked too. Each directory is walked once:
    under its path in the tree, else under the first link to it; links to a directory
    walked already are skipped with a warning, so links cannot make the walk grow beyond
    the tree."""
    top.let_go()
    _descriptors_enough()
    visited: set[tuple[int, int]] = set()
    # each: path as shown, path below the tree, its real path below the tree where a link
    # led into it (else None), the directory or (its parent, its name)
    stack: list[tuple[str, str, str | None, Node | tuple[Node, str]]] = [(shown_top, below, None, top)]
    links: deque[tuple[str, str, str | None, Node]] = deque()  # directories reached by a link
    while stack or links:
        if not stack:
            shown, rel, real, node = links.popleft()
            if node.identity in visited:
                yield Skipped(shown, f"skipped link to {_shown(node)}: that directory is copied already")
            else:
                stack.append((shown, rel, real, node))
            continue
        shown_dir, rel_dir, real_dir, where = stack.pop()
        try:
            node = where if isinstance(where, Node) else _subdirectory(scope, *where)
            if node.identity in visited:  # below a directory reached by a link, and reached before
                yield Skipped(shown_dir, f"skipped: {_shown(node)} is copied already")
                continue
            visited.add(node.identity)
            fd = node.listing()
            try:
                with os.scandir(fd) as listing:  # types asked while the listing is open
                    entries = sorted((entry.name, _kind(entry)) for entry in listing)
            finally:
                os.close(fd)
        except OSError as exc:
            yield Skipped(shown_dir, f"cannot read directory: {exc.strerror or exc}", error=True)
            continue
        subdirs: list = []
        shown_dir = shown_dir if shown_dir.endswith("/") else shown_dir + "/"
        rel_dir = rel_dir + "/" if rel_dir else ""
        real_dir = None if real_dir is None else "" if real_dir == os.curdir else real_dir + "/"
        for name, kind in entries:
            found = _entry(name, kind, (shown_dir, rel_dir, real_dir), scope, node, selection,
                           subdirs, links)
            if found is not None:
                yield found
        stack.extend(reversed(subdirs))


def _descriptors_enough() -> None:
    """As many open descriptors as the hard limit allows: the walk holds a directory per
    level with subdirectories still to walk, and one per link to a directory still to
    walk (a wide, deep or link-laden tree would otherwise fail for want of them)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (OSError, ValueError):
            pass


def _subdirectory(scope: Scope, parent: Node, name: str) -> Node:
    """The directory *name* of *parent*, which the walk listed as a directory."""
    node = scope.resolve(parent, name, follow=False)
    if stat.S_ISLNK(node.st.st_mode):
        raise OSError(errno.ELOOP, "it became a link while the tree was read")
    if not node.is_dir:
        raise OSError(errno.ENOTDIR, "it is no longer a directory")
    node.let_go()
    return node


def _kind(entry: os.DirEntry) -> int:
    """The file type of a listed entry (S_IFLNK for a link), from the listing where it says
    it; 0 where it must be asked again (a FIFO, a socket, a device; an entry gone)."""
    try:
        if entry.is_symlink():
            return stat.S_IFLNK
        if entry.is_file(follow_symlinks=False):
            return stat.S_IFREG
        if entry.is_dir(follow_symlinks=False):
            return stat.S_IFDIR
    except OSError:
        pass
    return 0


def _entry(name: str, kind: int, directory: tuple[str, str, str | None], scope: Scope,
           where: Node, selection, subdirs: list, links: deque) -> Found | Skipped | None:
    """Sort one directory entry, *name* of type *kind*: a Found or Skipped to yield
    (returned), or a subdirectory or link to walk later (appended to *subdirs* or *links*;
    None returned). *directory*: the directory's path as shown, below the tree, and its
    real path below the tree where a link led into it (else None), each ending with "/"
    ("" at the top)."""
    shown_dir, rel_dir, real_dir = directory
    shown = shown_dir + name
    rel = rel_dir + name
    real = None if real_dir is None else real_dir + name
    target = None
    try:
        if kind == stat.S_IFLNK:
            target = scope.resolve(where, name)
            target.let_go()
            mode = target.st.st_mode
        else:
            mode = kind or os.stat(name, dir_fd=where.fd, follow_symlinks=False).st_mode
    except Refused as refused:
        return Skipped(shown, f"skipped link to {refused.target}: {refused.reason}")
    except LinkError as exc:
        if exc.errno == errno.ENOENT:
            return Skipped(shown, "skipped broken link")
        if exc.errno == errno.ELOOP:  # as harmless as a broken link: no file is behind it
            return Skipped(shown, "skipped link: too many levels of symbolic links")
        return Skipped(shown, exc.strerror or str(exc), error=True)
    except FileNotFoundError:
        return Skipped(shown, "skipped: vanished while the tree was read")
    except OSError as exc:
        return Skipped(shown, exc.strerror or str(exc), error=True)
    is_dir = stat.S_ISDIR(mode)
    if not is_dir and not stat.S_ISREG(mode):
        return Skipped(shown, "skipped, " + not_regular(mode))
    if selection is not None:
        if not selection.wants(rel, is_dir) or real is not None and not selection.wants(real, is_dir):
            return None  # below a link, its real path counts too
        if target is not None:
            real = scope.below(target)
            if real is None or not selection.wants_path(real, is_dir):
                return None  # the target is left out: so is the link to it
    if is_dir:
        if target is None:
            subdirs.append((shown, rel, real, (where, name)))
        else:
            links.append((shown, rel, real, target))
        return None
    return Found(shown, scope, where, name, rel, target, link=False)
