"""What the kernel knows of a process, read from /proc: a warm helper's worker serves only a
caller whose context (memccp_py/warm/worker.py) is, in every respect read here, the
helper's own. Read by the helper and its workers, never by the thin client."""

import posix

from memccp_py.warm.client import _read, installation

#: What the kernel knows of a process that a call's outcome depends on, besides what the
#: call brings (arguments, environment, umask, directory, descriptors): a helper serves only
#: callers for which all of it is the same as for itself, and each context has its own.
NAMESPACES = (b"mnt", b"net", b"pid", b"user", b"uts", b"ipc", b"cgroup", b"time")
CAPABILITIES = (b"CapInh", b"CapPrm", b"CapEff", b"CapBnd", b"CapAmb")
FILES = ((b"security label", b"attr/current"), (b"cgroup", b"cgroup"),
         (b"audit login uid", b"loginuid"), (b"audit session", b"sessionid"),
         (b"resource limits", b"limits"))


_LABELLING = None


def _labels() -> bool:
    """Whether a security module that labels processes (SELinux, AppArmor, Smack) is
    active, asked once: this process's own label reads then; without one, no process's
    label does (each is the same "?")."""
    global _LABELLING
    if _LABELLING is None:
        _LABELLING = _read(b"/proc/self/attr/current") != b"?"
    return _LABELLING


_STATX = []  # statx() from the C library, looked up once; empty: not there


def _statx():
    """statx(2) through ctypes (loaded by a helper, never by the thin client), or None."""
    if not _STATX:
        try:
            import ctypes

            function = ctypes.CDLL(None, use_errno=True).statx
            function.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint, ctypes.c_char_p)
            _STATX.append((function, ctypes.create_string_buffer(256)))
        except (ImportError, OSError, AttributeError):
            _STATX.append(None)
    return _STATX[0]


STATX_INO, STATX_MNT_ID = 0x100, 0x1000


def _root(proc: int) -> bytes:
    """The root directory of the process whose /proc directory is *proc*: its device, inode
    and mount (a chroot onto a bind mount of / has the inode of / but a mount of its own);
    not its name, which depends on who looks. One statx where it tells the mount (Linux
    5.8), else an open, its fstat and its fdinfo."""
    found = _statx()
    if found is not None:
        function, buffer = found
        if function(proc, b"root", 0, STATX_INO | STATX_MNT_ID, buffer) == 0:
            raw = buffer.raw  # struct statx: mask at 0, ino at 32, dev major, minor at 136, mnt_id at 144
            if int.from_bytes(raw[0:4], "little") & (STATX_INO | STATX_MNT_ID) == STATX_INO | STATX_MNT_ID:
                device = posix.makedev(int.from_bytes(raw[136:140], "little"), int.from_bytes(raw[140:144], "little"))
                return b"%d:%d:%d" % (device, int.from_bytes(raw[32:40], "little"),
                                      int.from_bytes(raw[144:152], "little"))
    try:
        fd = posix.open(b"root", posix.O_PATH | posix.O_CLOEXEC, dir_fd=proc)
    except OSError:
        return b"?"
    try:
        st = posix.fstat(fd)
        mount = b"?"
        for line in _read(b"/proc/self/fdinfo/%d" % fd).split(b"\n"):
            if line.startswith(b"mnt_id:"):
                mount = line[7:].strip()
        return b"%d:%d:%s" % (st.st_dev, st.st_ino, mount)
    except OSError:
        return b"?"
    finally:
        posix.close(fd)


def context(proc: bytes = b"/proc/self"):
    """The context of the process *proc* (/proc/self, /proc/PID): a list of (property,
    value) pairs, then a dict of what is not compared but used (SigIgn, the terminal).
    Everything is read below one descriptor of *proc*: the process cannot change under it."""
    try:
        where = posix.open(proc, posix.O_PATH | posix.O_DIRECTORY | posix.O_CLOEXEC)
    except OSError:
        where = None
    try:
        return _context(where)
    finally:
        if where is not None:
            posix.close(where)


#: The lines of /proc/PID/status that are compared or used, each found where it is rather
#: than the whole file parsed (it has some sixty lines).
STATUS_KEYS = (b"Uid", b"Gid", b"Groups", *CAPABILITIES, b"NoNewPrivs", b"Seccomp", b"Seccomp_filters", b"SigIgn")
_NEEDLES = tuple((key, b"\n" + key + b":") for key in STATUS_KEYS)


def _status(data: bytes) -> dict:
    """The values of STATUS_KEYS in *data* (a status file), blanks made single spaces; each
    line's last occurrence, as the whole file parsed in order would give: the kernel's lines
    all come after the one line a process names (its Name)."""
    found = {}
    for key, needle in _NEEDLES:
        start = data.rfind(needle)
        if start >= 0:
            start += len(needle)
            end = data.find(b"\n", start)
            found[key] = b" ".join(data[start:end if end >= 0 else len(data)].split())
    return found


def _context(proc):
    pairs = []
    for name in NAMESPACES:
        try:
            if proc is None:
                raise OSError
            pairs.append((name + b" namespace", posix.readlink(b"ns/" + name, dir_fd=proc)))
        except OSError:
            pairs.append((name + b" namespace", b"?"))
    pairs.append((b"root directory", _root(proc) if proc is not None else b"?"))
    status = _status(_read(b"status", proc))
    pairs.append((b"user and group ids", status.get(b"Uid", b"?") + b"/" + status.get(b"Gid", b"?")))
    pairs.append((b"groups", status.get(b"Groups", b"?")))
    pairs.append((b"capabilities", b" ".join(status.get(key, b"?") for key in CAPABILITIES)))
    pairs.append((b"no_new_privs", status.get(b"NoNewPrivs", b"?")))
    pairs.append((b"seccomp", status.get(b"Seccomp", b"?") + b"/" + status.get(b"Seccomp_filters", b"?")))
    for name, file in FILES:
        if name == b"security label" and not _labels():
            pairs.append((name, b"none"))  # no module that labels processes is active
        else:
            pairs.append((name, _read(file, proc)))
    fields = _read(b"stat", proc).rpartition(b")")[2].split()
    pairs.append((b"nice value", fields[16] if len(fields) > 16 else b"?"))
    extra = {b"SigIgn": status.get(b"SigIgn", b"0"),
             b"pgrp": fields[2] if len(fields) > 5 else b"?",
             b"tty": fields[4] if len(fields) > 5 else b"?",
             b"tpgid": fields[5] if len(fields) > 5 else b"?"}
    return pairs, extra


def helper_name(pairs) -> bytes:
    """The name of the helper for this installation and the context *pairs*, as a helper
    of another context tells a caller it refuses: equal installations and contexts, equal
    names (short: a socket's path has 108 bytes)."""
    data = b"\0".join([installation(), *(value for _, value in pairs)])
    return b"%010x" % (int.from_bytes(data, "little") % 0xFFFFFFFFA9)  # 2**40 - 87, a prime
