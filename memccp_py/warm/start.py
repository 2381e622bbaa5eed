"""The warm helper's start (bin/memccp's client runs :func:`serve` in a fresh interpreter):
one helper per installation and context holds the lock, listens on the socket, and serves
(memccp_py/warm/helper.py) until it is idle or its code changed."""

from __future__ import annotations

import os
import socket

from memccp_py.warm.helper import Helper


def serve(directory: str, name: str) -> None:
    """Serve calls on DIRECTORY/socket.NAME until idle or outdated; return at once if
    another helper holds DIRECTORY/lock.NAME (NAME: the installation's)."""
    import fcntl

    if len(set(os.getresuid())) > 1 or len(set(os.getresgid())) > 1:
        return  # started set-user-ID or set-group-ID: it would serve with ids not the caller's
    _name_process(b"memccp-helper")
    while True:  # descriptors 0-2 taken, so that no connection or lock can be one of them
        null = os.open(os.devnull, os.O_RDWR)
        if null > 2:
            os.close(null)
            break
        os.set_inheritable(null, True)
    lock = os.open(os.path.join(directory, f"lock.{name}"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(lock)
        return
    os.ftruncate(lock, 0)
    os.write(lock, b"%d\n" % os.getpid())
    path = os.path.join(directory, f"socket.{name}")
    try:
        listener = _listen(path)
    except OSError:
        os.close(lock)
        return
    helper = Helper(listener, path, lock, os.path.join(directory, f"lock.{name}"))
    try:
        helper.start()
        helper.loop()
    finally:
        helper.retire()


def _name_process(name: bytes) -> None:
    """The name ps and top show (the kernel's comm)."""
    try:
        with open("/proc/self/comm", "wb") as comm:
            comm.write(name)
    except OSError:
        pass


def _listen(path: str) -> socket.socket:
    """Bind and listen under a private name, then rename into place: a client never finds
    a socket that is not listening yet (one left behind by a dead helper is replaced, as is
    a private name left by a dead process: the directory is this user's alone)."""
    temporary = f"{path}.{os.getpid()}"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        listener.bind(temporary)
        listener.listen(128)
        listener.setblocking(False)
        os.rename(temporary, path)
    except BaseException:
        listener.close()
        raise
    return listener
