"""One memcached server spoken to with the binary protocol.

bmemcached's ``Protocol`` provides the protocol's framing constants and SASL
authentication; this module changes what a file copier must not inherit:

* values are stored as the file's bytes with the caller's flags: no pickling,
  no zlib, no flag bits of bmemcached's own;
* stores, single or many, go as quiet commands and a closing no-op, so one
  reply path reports every item's status in pipelined and unbuffered runs alike;
* all I/O goes through :class:`~memccp_py.wire.Wire`: the timeout means "no
  progress", replies are bounded, and every socket or protocol fault raises
  :class:`~memccp_py.errors.ServerError` naming the server and closes the
  connection. Nothing is remembered here: the next request reconnects.
"""

from __future__ import annotations

import struct
from collections import abc

from bmemcached.exceptions import AuthenticationNotSupported, InvalidCredentials, MemcachedException
from bmemcached.protocol import Protocol

from memccp_py.errors import AuthenticationError, CopyError, ServerError
from memccp_py.items import ITEM_STATUS, Item, compare, item_error
from memccp_py.servers import Server
from memccp_py.wire import HEADER, REQUEST, Wire, WireFault, describe_socket_error, dial

__all__ = ["Connection", "describe_socket_error"]

#: Replies to stores, SASL and STAT carry short texts: anything longer is not memcached.
MAX_REPLY_BODY = 64 << 10
#: The largest value a get may announce (memcached -I is at most 1 GiB).
MAX_VALUE_BODY = (1 << 30) + 4 + 250
#: STAT answers this many lines at most (memcached: about 100), each this long at most.
MAX_STATS, MAX_STAT_BODY = 1000, 4096

_QUIET_STORE = {"set": 0x11, "add": 0x12, "replace": 0x13}
_NOOP, _STAT, _GETKQ = 0x0A, 0x10, 0x0D
_AUTH_FAILED = "authentication failed (wrong username or password)"
_AUTH_REQUIRED = "authentication required: give --username and --password"



def _stat_packet(opaque: int, group: bytes) -> bytes:
    return HEADER.pack(REQUEST, _STAT, len(group), 0, 0, 0, len(group), opaque, 0) + group


class Connection(Protocol):
    """One server; every method raises ServerError (connection closed) on a server fault."""

    def __init__(self, server: Server, timeout: float | None = None,
                 username: str | None = None, password: str | None = None) -> None:
        # bmemcached is given no address to parse (it would split host:port with urllib's
        # deprecated splitport, a warning per connection): open() connects by itself.
        super().__init__(server.path or "/", username=username, password=password,
                         socket_timeout=timeout)
        self.spec = server
        self.host = server.host
        self.port = server.port
        self.timeout = timeout
        self.wire: Wire | None = None
        #: the server's eviction counter when this connection was made (None: unknown)
        self.evictions_at_connect: int | None = None
        self._item_size_max: int | None | bool = False  # False: not asked on this connection
        self._opaque = 0
        self._connect_stat: int | None = None  # the STAT asked on connecting, not read yet
        self._unsent: list[bytes] = []  # that STAT, until it goes out with the first request
        #: the eviction counter read right after the last request (False: none since)
        self._evictions_after: int | None | bool = False

    def __str__(self) -> str:  # bmemcached's own includes the password
        return f"server {self.spec.name}"

    __repr__ = __str__

    # -- faults ------------------------------------------------------------------
    def _fault(self, reason: str, kind: type = ServerError) -> ServerError:
        self.disconnect()
        return kind(f"server {self.spec.name}: {reason}")

    def disconnect(self) -> None:
        """Close the socket; the next request connects again."""
        if self.wire is not None:
            self.wire.close()
        self.wire = self.connection = None
        self._connect_stat = None
        self._unsent = []
        self._evictions_after = False
        self._item_size_max = False  # a restarted server may have another -I

    def _next_opaques(self, count: int) -> int:
        if self._opaque + count >= 1 << 31:
            self._opaque = 0
        first, self._opaque = self._opaque, self._opaque + count
        return first

    # -- what bmemcached's SASL code calls -----------------------------------------
    def _send(self, data):
        self._request([data])

    def _request(self, parts: list[bytes]) -> None:
        """Send *parts*, after the STAT of :meth:`open` if that has not gone out yet."""
        self._evictions_after = False
        self.wire.start()
        if self._unsent:
            parts, self._unsent = self._unsent + parts, []
        self.wire.send(parts)

    def _get_response(self):
        r = self.wire.reply(MAX_REPLY_BODY)
        body = r.extras + r.key + (r.value or b"")
        return (0x81, r.opcode, len(r.key), len(r.extras), 0, r.status, len(body), r.opaque, 0, body)

    # -- connecting ----------------------------------------------------------------
    def open(self) -> None:
        """Connect, authenticate and ask for the eviction counter, unless connected. The
        counter's answer is read before the next reply (:meth:`_settle`): the first store
        goes out with it, not a round trip later."""
        if self.wire is not None:
            return
        try:
            self.connection = dial(self.spec, self.timeout)
            self.wire = Wire(self.connection, self.timeout)
            self.authenticated = False
            self._send_authentication()
            self.evictions_at_connect = None
            self._connect_stat = self._next_opaques(1)
            self._unsent = [_stat_packet(self._connect_stat, b"")]
        except InvalidCredentials:
            raise self._fault(_AUTH_FAILED, AuthenticationError) from None
        except AuthenticationNotSupported:
            raise self._fault("the server offers no PLAIN authentication", AuthenticationError) from None
        except MemcachedException as exc:  # memcached answers a wrong password with 0x20
            code = getattr(exc, "code", 0)
            raise self._fault(_AUTH_FAILED if code in (0x08, 0x20) else
                              f"authentication refused (status 0x{code:02x})", AuthenticationError) from None
        except WireFault as exc:
            raise self._fault(str(exc)) from None
        except OSError as exc:
            raise self._fault(describe_socket_error(exc, self.timeout)) from None
        except ServerError:
            self.disconnect()
            raise

    _open_connection = open

    def _server_status(self, status: int) -> None:
        """Raise for a status that fails the whole server rather than one item."""
        if status in (0x08, 0x20):
            raise self._fault(_AUTH_FAILED if self._username else _AUTH_REQUIRED,
                              AuthenticationError)
        if status == 0x81:
            raise self._fault("the server does not know this command")
        if status not in (0x01, 0x02, 0x03, 0x05) and status not in ITEM_STATUS:
            raise self._fault(f"unexpected reply status 0x{status:02x}")

    def _settle(self) -> None:
        """Read the answer to the STAT sent on connecting, which comes before any other."""
        if self._connect_stat is not None:
            opaque, self._connect_stat = self._connect_stat, None
            self.evictions_at_connect = self._stat_answer(opaque, "evictions")

    def _stat(self, name: str, group: bytes = b"") -> int | None:
        """One number from the server's statistics (general, or *group*: b"settings"),
        None if it has none."""
        opaque = self._next_opaques(1)
        self._request([_stat_packet(opaque, group)])
        self._settle()
        return self._stat_answer(opaque, name)

    def _stat_answer(self, opaque: int, name: str) -> int | None:
        status, value = self.wire.stat_value(opaque, _STAT, name.encode(), MAX_STAT_BODY,
                                             MAX_STATS)
        if status:
            if status in (0x08, 0x20):
                self._server_status(status)
            return None
        return int(value) if value is not None and value.isdigit() else None

    # -- what memccp calls ------------------------------------------------------
    def item_size_max(self) -> int | None:
        """The largest item the server stores (memcached -I), asked once; None if unknown."""
        if self._item_size_max is False:
            self.open()
            try:
                self._item_size_max = self._stat("item_size_max", b"settings")
            except WireFault as exc:
                raise self._fault(str(exc)) from None
        return self._item_size_max

    def evicted_since_connect(self) -> int | None:
        """How many items the server evicted since this connection was made (None if not
        connected or unknown)."""
        if self.wire is None:
            return None
        now = self._evictions_after
        try:
            if now is False:
                now = self._stat("evictions")
        except WireFault as exc:
            raise self._fault(str(exc)) from None
        if now is None or self.evictions_at_connect is None:
            return None
        return now - self.evictions_at_connect

    def store_many(self, op: str, items: abc.Sequence[Item], exptime: int,
                   count_evictions: bool = False) -> list[tuple[Item, CopyError]]:
        """Store *items* (distinct keys) with *op*: set, add or replace. Return the items the
        server refused, each with why; raise ServerError if the server itself failed.
        *count_evictions*: also read the eviction counter after them, in the same round
        trip, for :meth:`evicted_since_connect` (unless another request follows)."""
        self.open()
        first = self._next_opaques(len(items) + 1)
        noop = first + len(items)
        parts = []
        code = _QUIET_STORE[op]
        for number, item in enumerate(items, first):
            parts.append(HEADER.pack(REQUEST, code, len(item.key), 8, 0, 0,
                                     len(item.key) + len(item.data) + 8, number, 0)
                         + struct.pack("!LL", item.flags, exptime) + item.key)
            parts.append(item.data)
        parts.append(HEADER.pack(REQUEST, _NOOP, 0, 0, 0, 0, 0, noop, 0))
        stat = self._next_opaques(1) if count_evictions else None
        if stat is not None:
            parts.append(_stat_packet(stat, b""))
        try:
            try:
                self._request(parts)
            except WireFault:
                self._explain_close()
                raise
            failures = self._store_replies(op, items, first, noop, code)
        except WireFault as exc:
            raise self._fault(str(exc)) from None
        if stat is not None:  # the items are stored (the no-op is answered) whatever follows
            try:
                self._evictions_after = self._stat_answer(stat, "evictions")
            except (WireFault, ServerError):
                self.disconnect()  # the counter is unknown: no eviction is reported
        return failures

    def _explain_close(self) -> None:
        """The server dropped us while we sent: an error reply received first says why."""
        while len(self.wire.inbox) >= HEADER.size:
            try:
                reply = self.wire.reply(MAX_REPLY_BODY)
            except WireFault:
                return
            if reply.status:
                self._server_status(reply.status)

    def _store_replies(self, op: str, items: abc.Sequence[Item], first: int, noop: int,
                       code: int) -> list[tuple[Item, CopyError]]:
        failures = []
        answered = set()
        self._settle()
        while True:
            reply = self.wire.reply(MAX_REPLY_BODY)
            if reply.opaque == noop and reply.opcode == _NOOP:
                return failures
            if not first <= reply.opaque < noop or reply.opaque in answered:
                raise WireFault("answered a request never sent (bad opaque)")
            if reply.opcode != code:
                raise WireFault(f"answered another command (opcode 0x{reply.opcode:02x})")
            answered.add(reply.opaque)
            if reply.status:
                self._server_status(reply.status)
                item = items[reply.opaque - first]
                failures.append((item, item_error(op, item, reply.status)))

    def read_back(self, expected: abc.Mapping[bytes, tuple[int, int, bytes]]) -> dict[bytes, str]:
        """Read *expected*'s keys (key -> flags, length, digest) with quiet gets; return
        key -> what is wrong, for each item missing or not as stored."""
        self.open()
        keys = list(expected)
        first = self._next_opaques(len(keys) + 1)
        noop = first + len(keys)
        parts = [HEADER.pack(REQUEST, _GETKQ, len(k), 0, 0, 0, len(k), n, 0) + k
                 for n, k in enumerate(keys, first)]
        parts.append(HEADER.pack(REQUEST, _NOOP, 0, 0, 0, 0, 0, noop, 0))
        problems = {}
        try:
            self._request(parts)
            self._settle()
            answered, found = set(), set()
            largest = max(length for _, length, _ in expected.values())
            while True:
                reply = self.wire.reply(MAX_VALUE_BODY, max_kept=largest)
                if reply.opaque == noop and reply.opcode == _NOOP:
                    break
                if not first <= reply.opaque < noop or reply.opaque in answered:
                    raise WireFault("answered a request never sent (bad opaque)")
                answered.add(reply.opaque)
                key = keys[reply.opaque - first]
                if reply.status:
                    self._server_status(reply.status)
                    continue  # not found: reported as missing below
                found.add(reply.opaque)
                problem = compare(expected[key], reply)
                if problem:
                    problems[key] = problem
        except WireFault as exc:
            raise self._fault(str(exc)) from None
        for number, key in enumerate(keys, first):
            if number not in found:
                problems[key] = "missing after the run"
        return problems

