"""Taking on the caller, in a worker: the call read off the socket (its descriptors and
fields, as warm/client.py sends them), and the worker becoming the calling process
(directory, umask, environment, descriptors 0-2, standard streams, the signals it ignores).
"""

from __future__ import annotations

import io
import os
import signal
import socket
import struct
import sys

#: The request's first field: the client's and the worker's versions of this exchange agree.
PROTOCOL = b"memccp-helper-1"
#: A request is this long at most (arguments and environment).
MAX_REQUEST = 8 << 20


def in_background(caller: dict, request) -> bool:
    """Whether the caller's standard input is its terminal while it is not in the terminal's
    foreground process group: reading it must stop the caller (job control), in-process."""
    fds, fields = request
    if fields[1][:1] != b"1" or not os.isatty(fds[1]):
        return False
    return caller.get(b"tty", b"0") != b"0" and caller.get(b"tpgid") != caller.get(b"pgrp")


def ignore_as(caller: dict) -> None:
    """Ignore the signals the caller ignores (nohup, a background job of a script)."""
    ignored = int(caller.get(b"SigIgn", b"0"), 16)
    while ignored:  # the set bits alone: a caller ignores two or three signals of 64
        signum = (ignored & -ignored).bit_length()
        ignored &= ignored - 1
        if signum < signal.NSIG and signum not in (signal.SIGKILL, signal.SIGSTOP):
            try:
                signal.signal(signum, signal.SIG_IGN)
            except (OSError, ValueError):
                pass


def receive(conn: socket.socket):
    """(descriptors, fields) of the call, or None if it is not one this worker can take."""
    conn.settimeout(5.0)
    fds: list[int] = []
    try:
        data, ancillary, _, _ = conn.recvmsg(1 << 16, socket.CMSG_SPACE(4 * 4))
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds += [fd for fd, in struct.iter_unpack("i", payload[:len(payload) // 4 * 4])]
        if len(data) < 4 or int.from_bytes(data[:4], "big") > MAX_REQUEST:
            return None
        size, body = int.from_bytes(data[:4], "big"), data[4:]
        while len(body) < size:
            chunk = conn.recv(min(1 << 20, size - len(body)))
            if not chunk:
                return None
            body += chunk
        fields = body.split(b"\0")
        if fields[0] != PROTOCOL or len(fds) != 1 + fields[1].count(b"1") \
                or fields[3] != os.fsencode(sys.getfilesystemencoding()):
            return None
    except (OSError, ValueError, IndexError):
        return None
    finally:
        conn.settimeout(None)
    return fds, fields


def become_caller(fds: list[int], fields: list[bytes]) -> list[str]:
    """Become the client's process (directory, umask, environment, descriptors, standard
    streams) while its go is on the way; return its arguments."""
    open_mask, umask = fields[1].decode(), int(fields[2], 8)
    stdio = [fields[4 + 4 * i:8 + 4 * i] for i in range(3)]
    argc = int(fields[16])
    argv = [os.fsdecode(arg) for arg in fields[17:17 + argc]]
    os.fchdir(fds[0])
    os.close(fds[0])
    os.umask(umask)
    set_environment(fields[17 + argc:])
    given = iter(fds[1:])
    for fd in (0, 1, 2):
        if open_mask[fd] == "1":
            source = next(given)
            os.dup2(source, fd)
            os.close(source)
        else:
            os.close(fd)
    streams = [_stream(fd, *stdio[fd]) if open_mask[fd] == "1" else None for fd in (0, 1, 2)]
    sys.stdin, sys.stdout, sys.stderr = streams
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = streams
    sys.argv = ["memccp", *argv]
    return argv


def set_environment(entries: list[bytes]) -> None:
    """Make the environment the client's: os.environ and the C library's (for the
    resolver), one putenv per variable that differs."""
    wanted = {}
    for entry in entries:
        key, sep, value = entry.partition(b"=")
        if sep and key:
            wanted[key] = value
    data = getattr(os.environ, "_data", None)  # shared by os.environ and os.environb
    if not isinstance(data, dict) or any(not isinstance(key, bytes) for key in data):
        environ = os.environb
        for key in [key for key in environ if key not in wanted]:
            del environ[key]
        environ.update(wanted)
        return
    for key in data:
        if key not in wanted:
            os.unsetenv(key)
    for key, value in wanted.items():
        if data.get(key) != value:
            os.putenv(key, value)
    data.clear()
    data.update(wanted)


def _stream(fd: int, encoding: bytes, errors: bytes, line_buffering: bytes, write_through: bytes):
    """A standard stream as the interpreter makes it at start-up."""
    reading = fd == 0
    raw = io.FileIO(fd, "rb" if reading else "wb", closefd=False)
    buffer = io.BufferedReader(raw) if reading else io.BufferedWriter(raw)
    return io.TextIOWrapper(buffer, encoding=encoding.decode(), errors=errors.decode(), newline="\n",
                            line_buffering=line_buffering == b"1", write_through=write_through == b"1")
