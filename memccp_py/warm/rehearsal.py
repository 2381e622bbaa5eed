"""A rehearsal of one call, run by the warm helper when it starts and by each spare worker
while no call waits: a small file (the helper's lock file) copied to a stand-in memcached
(a thread answering on a private unix socket), the standard streams built as a call builds
them.

A forked worker shares the helper's memory until it writes to it; every page a call writes
(objects' reference counts, caches, allocations) is then copied, and an idle worker's memory
has left the processor's caches. The rehearsal makes those copies and brings that memory back
while nobody waits, so that the caller does not. Nothing of it leaves the worker: its output
goes to a buffer, and its socket is removed.
"""

from __future__ import annotations

import io
import os
import socket
import stat
import sys
import threading
from collections import abc

from memccp_py.memcached.frames import HEADER, NOOP, STAT, response

#: The most the stand-in or the rehearsal waits for the other, in seconds: a caller that
#: comes meanwhile waits as long at worst.
PATIENCE = 0.5


def listen_unix(path: str, backlog: int) -> socket.socket:
    """A unix socket listening at PATH (in a private directory: what is there is ours, left
    behind by a process that died, and is replaced)."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        listener.bind(path)
        listener.listen(backlog)
    except BaseException:
        listener.close()
        raise
    return listener


def _fill(conn: socket.socket, received: bytes, size: int) -> bytes | None:
    """RECEIVED with more from *conn* until it holds SIZE bytes; None if *conn* closes."""
    while len(received) < size:
        chunk = conn.recv(1 << 16)
        if not chunk:
            return None
        received += chunk
    return received


def _stand_in(listener: socket.socket) -> None:
    """Answer one connection as an empty memcached: STAT, quiet stores (no answer), NOOP."""
    try:
        conn, _ = listener.accept()
    except OSError:
        return
    with conn:
        conn.settimeout(PATIENCE)
        received = b""
        try:
            while True:
                received = _fill(conn, received, HEADER.size)
                if received is None:
                    return
                _magic, opcode, _k, _e, _t, _s, bodylen, opaque, _cas = HEADER.unpack_from(received)
                received = _fill(conn, received, HEADER.size + bodylen)
                if received is None:
                    return
                received = received[HEADER.size + bodylen:]
                if opcode == STAT:
                    conn.sendall(response(STAT, opaque, b"evictions", b"0") + response(STAT, opaque))
                elif opcode == NOOP:
                    conn.sendall(response(NOOP, opaque))
        except OSError:
            return


def _poke(path: str) -> None:
    poke = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        poke.settimeout(PATIENCE)
        poke.connect(path)
    except OSError:
        pass
    finally:
        poke.close()


def rehearse(cli, parser, directory: str, sample: str,
             make_stream: abc.Callable[[int], object] | None = None) -> int | None:
    """Run one call of cli.main() copying SAMPLE to a stand-in on a socket in DIRECTORY;
    *make_stream(fd)* builds a standard stream as a call does. Return the call's exit
    status, None if there was no rehearsal or it failed (that only ends it)."""

    path = os.path.join(directory, f"rehearsal.{os.getpid()}.socket")
    try:
        if not stat.S_ISREG(os.lstat(sample).st_mode):
            return None
    except OSError:
        return None  # removed: nothing to copy
    if not path.isprintable() or any(c in path for c in ", :"):
        return None  # a server list would not read it as one socket
    streams = sys.stdout, sys.stderr
    status = listener = None
    try:
        listener = listen_unix(path, 1)
        listener.settimeout(PATIENCE)
        stand_in = threading.Thread(target=_stand_in, args=(listener,), daemon=True)
        stand_in.start()
        if make_stream is not None:
            for fd in (0, 1, 2):
                make_stream(fd)
        sys.stdout = sys.stderr = io.StringIO()
        status = cli.main(["--key=/rehearsal", f"--timeout={PATIENCE:g}", f"--servers={path}", "--", sample],
                          parser=parser)
        _poke(path)  # a stand-in still waiting for the call's connection takes this one, and ends
        stand_in.join(PATIENCE)
    except Exception:  # noqa: BLE001  (only a rehearsal: the real call will say what fails)
        pass
    finally:
        sys.stdout, sys.stderr = streams
        if listener is not None:
            listener.close()
        try:
            os.unlink(path)
        except OSError:
            pass
    return status
