"""Opened objects: a :class:`Node` holds a descriptor of a file or directory, opened a
component at a time (``O_PATH | O_NOFOLLOW``) or, for a name with no link in it, in one
``openat2()`` call the kernel keeps beneath its start. The link rule that decides which
links are followed is :mod:`memccp_py.files.resolve`'s.
"""

from __future__ import annotations

import errno
import os
import select
import stat
import sys

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_STEP = os.O_PATH | os.O_NOFOLLOW | _CLOEXEC
_LIST = os.O_RDONLY | os.O_DIRECTORY | _CLOEXEC


class LinkError(OSError):
    """What a link leads to cannot be had (``errno`` says why: ENOENT for a broken link)."""


class Node:
    """An opened object: ``fd`` (an O_PATH descriptor, closed with the node), ``st`` its
    status, ``parent`` the node it was opened in while that is held (None at a start, or
    once let go), ``name`` its name there, ``inside`` whether it lies inside the scope's
    tree, ``ancestry`` the (identity, inside, ancestry) of the directory above it, kept
    without holding it open (None where not known)."""

    __slots__ = ("fd", "st", "parent", "name", "inside", "ancestry", "_holder")

    def __init__(self, fd: int, st: os.stat_result, parent: Node | None, name: str | None,
                 inside: bool) -> None:
        self._holder = _holder(fd)
        self.fd, self.st, self.parent, self.name, self.inside = fd, st, parent, name, inside
        self.ancestry = None if parent is None else (parent.identity, parent.inside, parent.ancestry)

    def let_go(self) -> None:
        """Hold the directories above no longer (a deep walk would hold one descriptor a
        level): ".." opens the parent again, and checks it is the one it was."""
        self.parent = None

    @property
    def identity(self) -> tuple[int, int]:
        return self.st.st_dev, self.st.st_ino

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.st.st_mode)

    def kernel_name(self) -> str | None:
        """What the kernel calls it now (its real path), None where /proc is absent."""
        try:
            name = os.readlink(f"/proc/self/fd/{self.fd}")
        except OSError:
            return None
        return name[:-len(" (deleted)")] if name.endswith(" (deleted)") else name

    def listing(self) -> int:
        """A new descriptor of this directory to list it with."""
        return os.open(".", _LIST, dir_fd=self.fd)

    def reopen(self, flags: int) -> int:
        """A new descriptor of this very file, opened with *flags* (for reading)."""
        if _PROC_FD:
            return os.open(f"/proc/self/fd/{self.fd}", flags | _CLOEXEC)
        if self.parent is None or self.name is None:
            raise OSError(errno.ENOENT, "cannot open it again without /proc")
        fd = os.open(self.name, flags | os.O_NOFOLLOW | _CLOEXEC, dir_fd=self.parent.fd)
        info = os.fstat(fd)
        if (info.st_dev, info.st_ino) != self.identity:
            os.close(fd)
            raise OSError(errno.ESTALE, "it changed while it was opened")
        return fd


_PROC_FD = os.path.isdir("/proc/self/fd")


def _holder(fd: int):
    """An object that closes *fd* when it is dropped, by C code alone: a finaliser in Python
    (__del__) can be where a Ctrl-C is raised, and Python prints and drops an exception
    raised there: the run would go on. select.epoll.fromfd takes any descriptor as its own,
    unchecked, and closes it when dropped."""
    return select.epoll.fromfd(fd)


def open_step(parent: int | None, name: str) -> tuple[int, os.stat_result]:
    """*name* (one component, or / or .) opened as a path only, no link followed, in the
    directory *parent* (None: the working directory)."""
    fd = os.open(name, _STEP, dir_fd=parent)
    try:
        return fd, os.fstat(fd)
    except BaseException:
        os.close(fd)
        raise


# openat2(2): one call for a name with no link in it, kept beneath its start by the kernel.
_RESOLVE_NO_MAGICLINKS, _RESOLVE_NO_SYMLINKS, _RESOLVE_BENEATH = 0x02, 0x04, 0x08
_SYS_OPENAT2 = {"x86_64": 437, "aarch64": 437, "armv7l": 437, "i686": 437, "ppc64le": 437,
                "s390x": 437, "riscv64": 437, "loongarch64": 437}
_openat2 = None  # the syscall function once loaded; False where the kernel lacks it
#: errors after which the name is resolved a component at a time instead: a link on the way
#: (ELOOP), ".." above the start (EXDEV), a rename meanwhile (EAGAIN)
_RETRY = (errno.ELOOP, errno.EXDEV, errno.EAGAIN)


def _load():
    global _openat2
    if _openat2 is None:
        _openat2 = False
        number = _SYS_OPENAT2.get(os.uname().machine)
        if number is not None:
            import ctypes

            syscall = ctypes.CDLL(None, use_errno=True).syscall
            syscall.restype = ctypes.c_long
            syscall.argtypes = (ctypes.c_long, ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p,
                                ctypes.c_size_t)
            _openat2 = (number, syscall, ctypes.get_errno)
    return _openat2


def open_beneath(base: Node, path: str) -> Node | None:
    """*path* opened by openat2() in *base* with no link followed (and beneath *base* when
    it lies inside the tree), or None: resolve it a component at a time instead."""
    call = _load()
    if not call:
        return None
    number, syscall, get_errno = call
    resolve = _RESOLVE_NO_SYMLINKS | _RESOLVE_NO_MAGICLINKS | (_RESOLVE_BENEATH if base.inside else 0)
    how = _STEP.to_bytes(8, sys.byteorder) + bytes(8) + resolve.to_bytes(8, sys.byteorder)
    fd = syscall(number, base.fd, os.fsencode(path), how, len(how))
    if fd < 0:
        code = get_errno()
        if code in (errno.ENOSYS, errno.EPERM, errno.E2BIG, errno.EINVAL):
            global _openat2
            _openat2 = False  # not this kernel's, or a filter forbids it
            return None
        if code in _RETRY:
            return None
        raise OSError(code, os.strerror(code), path)
    st = os.fstat(fd)
    if stat.S_ISLNK(st.st_mode) or stat.S_ISDIR(st.st_mode):  # a link last, or a directory:
        os.close(fd)                                           # its parents matter
        return None
    return Node(fd, st, None, None, base.inside)
