"""One memcached server spoken to through python-binary-memcached.

bmemcached's ``Protocol`` is used for the binary protocol itself; this module
changes only what a file copier must not inherit from it:

* values are stored as the file's bytes with the caller's flags: no pickling,
  no zlib, no flag bits of bmemcached's own (``serialize`` is overridden);
* sockets come from :meth:`Connection._open_connection`, which honours the
  timeout for unix sockets too, speaks IPv6 and sets TCP_NODELAY;
* bmemcached reports network failures as ``False``: the first socket error is
  kept, the server is not tried again, and every later store raises
  :class:`~memccp_py.errors.ServerError` naming it.
"""

from __future__ import annotations

import socket
from collections import abc

from bmemcached.exceptions import InvalidCredentials, MemcachedException
from bmemcached.protocol import Protocol

from memccp_py.errors import (
    AuthenticationError, CopyError, ItemTooLargeError, KeyExistsError, KeyNotFoundError,
    ServerError, StoreError,
)
from memccp_py.keys import show
from memccp_py.servers import Server

#: Binary protocol status codes a store can meet, with what they mean here.
_STATUS = {
    0x03: "value is larger than the server's item size limit (memcached -I)",
    0x04: "the server rejected the request as invalid",
    0x05: "item not stored",
    0x20: "authentication required: give --username and --password",
    0x81: "the server does not know this command",
    0x82: "the server is out of memory",
}


class Payload:
    """A value stored exactly as given: these bytes (``data``), these ``flags``."""

    __slots__ = ("data", "flags")

    def __init__(self, data: bytes, flags: int) -> None:
        self.data = data
        self.flags = flags


class Item:
    """One item to store: ``key``, ``data`` (bytes) and ``flags``."""

    __slots__ = ("key", "data", "flags")

    def __init__(self, key: bytes, data: bytes, flags: int) -> None:
        self.key = key
        self.data = data
        self.flags = flags


def describe_socket_error(exc: BaseException, timeout: float | None) -> str:
    """A short human reason for a socket-level failure."""
    if isinstance(exc, socket.timeout):
        return f"no answer within {timeout:g} s" if timeout else "timed out"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host name ({exc.strerror})"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[:1].lower() + exc.strerror[1:]
    text = str(exc)
    if not text or text == "Delaying reconnection attempt":
        return "connection closed by the server"
    return text


class Connection(Protocol):
    """A bmemcached Protocol that stores raw bytes and reports every failure."""

    def __init__(self, server: Server, timeout: float | None = None,
                 username: str | None = None, password: str | None = None) -> None:
        super().__init__(server.path or "localhost", username=username, password=password,
                         socket_timeout=timeout)
        self.spec = server
        self.host = server.host
        self.port = server.port
        self.timeout = timeout
        self.failure: ServerError | None = None

    def __str__(self) -> str:  # bmemcached's own includes the password
        return f"server {self.spec.name}"

    __repr__ = __str__

    # -- what bmemcached calls ------------------------------------------------
    def serialize(self, value, compress_level=-1):  # noqa: D102 - bmemcached hook
        if not isinstance(value, Payload):
            raise TypeError("memccp stores Payload values only")
        return value.flags, value.data

    def _open_connection(self):
        if self.connection is not None or self.failure is not None:
            return
        self.authenticated = False
        try:
            self.connection = self._connect()
            self._send_authentication()
        except OSError as exc:
            self._connection_error(exc)
            raise

    def _connection_error(self, exception):
        self._fail(ServerError, describe_socket_error(exception, self.timeout))

    def _fail(self, kind: type, reason: str) -> None:
        """Remember the first failure: this server is not tried again in this run."""
        if self.failure is None:
            self.failure = kind(f"server {self.spec.name}: {reason}")
        self.disconnect()

    def _connect(self) -> socket.socket:
        if self.spec.path is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(self.timeout)
                sock.connect(self.spec.path)
            except BaseException:
                sock.close()
                raise
            return sock
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    # -- what memccp calls ----------------------------------------------------
    def check(self) -> None:
        """Raise ServerError if this server already failed in this run."""
        if self.failure is not None:
            raise type(self.failure)(str(self.failure))

    def store(self, op: str, item: Item, exptime: int) -> None:
        """Store one item with *op* (set, add or replace); raise a CopyError on any failure."""
        self.check()
        method = getattr(self, op)
        result = self._guarded(method, item.key, Payload(item.data, item.flags), exptime,
                               compress_level=0)
        if isinstance(result, tuple):  # bmemcached >= 0.32 may answer (success, cas)
            result = result[0]
        if result:
            return
        self.check()
        key = show(item.key)
        if op == "add":
            raise KeyExistsError(f"key '{key}' already exists (--add stores only new keys)")
        if op == "replace":
            raise KeyNotFoundError(f"key '{key}' does not exist (--replace changes only existing keys)")
        raise StoreError(f"key '{key}': item not stored")

    def store_many(self, op: str, items: abc.Iterable[Item], exptime: int) -> list[tuple[Item, CopyError]]:
        """Pipeline quiet sets/adds of *items* (distinct keys); return those that failed, with why."""
        items = list(items)
        if self.failure is not None:
            return [(it, self.failure) for it in items]
        if op == "replace":  # the binary protocol's quiet replace is not in bmemcached
            return self._one_by_one(op, items, exptime)
        mapping = {(it.key, 0) if op == "add" else it.key: Payload(it.data, it.flags) for it in items}
        failed = self._guarded(self.set_multi, mapping, time=exptime, compress_level=0)
        if self.failure is not None:
            return [(it, self.failure) for it in items]
        failed_keys = {k[0] if isinstance(k, tuple) else k for k in failed}
        # The quiet reply says only that a key failed: ask again, loudly, to learn why.
        return self._one_by_one(op, [it for it in items if it.key in failed_keys], exptime)

    def _one_by_one(self, op: str, items: list[Item], exptime: int) -> list[tuple[Item, CopyError]]:
        failures = []
        for it in items:
            try:
                self.store(op, it, exptime)
            except CopyError as exc:
                failures.append((it, exc))
        return failures

    def _guarded(self, method, *args, **kwargs):
        try:
            return method(*args, **kwargs)
        except InvalidCredentials:
            self._fail(AuthenticationError, "authentication failed (wrong username or password)")
        except MemcachedException as exc:
            code = getattr(exc, "code", None)
            if code in (0x08, 0x20):
                self._fail(AuthenticationError, "authentication failed (wrong username or password)"
                           if self._username else _STATUS[0x20])
            elif code == 0x03:
                raise ItemTooLargeError(_STATUS[0x03]) from None
            elif code in _STATUS:
                raise StoreError(_STATUS[code]) from None
            else:
                self._fail(ServerError, f"unexpected reply: {getattr(exc, 'message', exc)}")
        self.check()
