"""The binary protocol, spoken through python-binary-memcached for what it does well.

bmemcached's ``Protocol`` provides SASL authentication; this module changes what a file
copier must not inherit: values are stored as the file's bytes with the caller's flags (no
pickling, no zlib, no flag bits of bmemcached's own), and stores, single or many, go as
quiet commands and a closing no-op, so one reply path reports every item's status in
pipelined and unbuffered runs alike.
"""

from __future__ import annotations

import struct
from collections import abc

from bmemcached.exceptions import (
    AuthenticationNotSupported,
    InvalidCredentials,
    MemcachedException,
)
from bmemcached.protocol import Protocol

from memccp_py.errors import AuthenticationError, CopyError, ServerError
from memccp_py.memcached import frames
from memccp_py.memcached.frames import GETKQ, NOOP, QUIET_STORE, TEXT_ERRORS, request
from memccp_py.memcached.items import ITEM_STATUS, compare, item_error
from memccp_py.memcached.transport import (
    MAX_STATS,
    MAX_VALUE_BODY,
    Closed,
    Rejected,
    Wire,
    WireFault,
)
from memccp_py.records import Item
from memccp_py.report import show

#: Replies to stores, SASL and STAT carry short texts: anything longer is not memcached.
MAX_REPLY_BODY = 64 << 10
#: A STAT line's body is this long at most.
MAX_STAT_BODY = 4096

_AUTH_FAILED = "authentication failed (wrong username or password)"
_AUTH_REQUIRED = "authentication required: give --username and --password"
_AUTH_STATUS = (0x08, 0x20)
_SASL_LIST = 0x20


class Binary(Protocol):
    """The binary dialect of one connection (see :class:`~memccp_py.memcached.connection.Connection`)."""

    name = "binary"

    def __init__(self, conn) -> None:
        # bmemcached is given no address to parse (it would split host:port with urllib's
        # deprecated splitport, a warning per connection): the connection dials by itself.
        super().__init__("/", username=conn.username, password=conn.password,
                         socket_timeout=conn.timeout)
        self.conn = conn
        self.wire: Wire | None = None
        self._opaque = 0

    def __str__(self) -> str:  # bmemcached's own includes the password
        return str(self.conn)

    __repr__ = __str__

    def key_problem(self, key: bytes) -> str | None:
        """Any key of 1 to 250 bytes travels in the binary protocol."""
        return None

    def expiry_problem(self, exptime: int) -> str | None:
        """Any 32-bit expiry travels in the binary protocol."""
        return None

    def _next_opaques(self, count: int) -> int:
        if self._opaque + count >= 1 << 31:
            self._opaque = 0
        first, self._opaque = self._opaque, self._opaque + count
        return first

    # -- what bmemcached's SASL code calls -----------------------------------------

    def _get_response(self):
        r = frames.reply(self.wire, MAX_REPLY_BODY)
        body = r.extras + r.key + (r.value or b"")
        return (0x81, r.opcode, len(r.key), len(r.extras), 0, r.status, len(body), r.opaque, 0, body)

    # -- connecting ----------------------------------------------------------------
    def attach(self, wire: Wire) -> int | None:
        """Start speaking on *wire*: authenticate if asked, and ask for the eviction counter.
        The first request goes alone and ends with a newline: its answer proves the server
        speaks binary before any file's bytes go out, so a text server never reads them as
        commands. Return the counter (None: unknown); raise Rejected if the server does
        not speak binary."""
        self.wire = wire
        self.connection = wire.sock
        self.authenticated = False
        if self._username:
            self._first(self._authenticate, peek=False)
            opaque = self._next_opaques(1)
            self._request([frames.stat_request(opaque)])
        else:
            opaque = self._next_opaques(1)
            self._send(frames.stat_request(opaque, probe=True))
            self._first(lambda: None, peek=True)
        return self._stat_answer(opaque, "evictions")

    def _first(self, exchange: abc.Callable[[], None], peek: bool) -> None:
        """Run *exchange* (*peek*: then look at the head of its answer): Rejected if the
        server's first answer is not binary."""
        try:
            exchange()
            if peek:
                frames.first_header(self.wire, MAX_REPLY_BODY)
        except WireFault as exc:
            if bytes(self.wire.inbox).startswith(TEXT_ERRORS):
                said = bytes(self.wire.inbox[:200]).split(b"\r\n")[0].split(b"\n")[0]
                raise Rejected(f"it answered '{show(said)}'") from None
            if isinstance(exc, Closed) and not self.wire.heard:
                raise Rejected("it closed the connection at the first binary request") from None
            raise

    def _send(self, data):
        if self.wire.heard is False and len(data) == frames.HEADER.size and data[1] == _SASL_LIST:
            data = data[:-1] + b"\n"  # the probe: see attach()
        self.wire.start()
        self.wire.send([data])

    def _authenticate(self) -> None:
        try:
            self._send_authentication()
        except InvalidCredentials:
            raise self.conn.fault(_AUTH_FAILED, AuthenticationError) from None
        except AuthenticationNotSupported:
            raise self.conn.fault("the server offers no PLAIN authentication",
                                  AuthenticationError) from None
        except MemcachedException as exc:  # memcached answers a wrong password with 0x20
            code = getattr(exc, "code", 0)
            raise self.conn.fault(_AUTH_FAILED if code in _AUTH_STATUS else
                                  f"authentication refused (status 0x{code:02x})",
                                  AuthenticationError) from None

    def _request(self, parts: list[bytes]) -> None:
        self.wire.start()
        self.wire.send(parts)

    def server_status(self, status: int) -> None:
        """Raise for a status that fails the whole server rather than one item."""
        if status in _AUTH_STATUS:
            raise self.conn.fault(_AUTH_FAILED if self._username else _AUTH_REQUIRED,
                                  AuthenticationError)
        if status == 0x81:
            raise self.conn.fault("the server does not know this command")
        if status not in (0x01, 0x02, 0x03, 0x05) and status not in ITEM_STATUS:
            raise self.conn.fault(f"unexpected reply status 0x{status:02x}")

    def _stat_reply(self, opaque: int, name: str) -> tuple[int, int | None]:
        status, value = frames.stat_value(self.wire, opaque, name.encode(), MAX_STAT_BODY, MAX_STATS)
        if status:
            return status, None
        return 0, int(value) if value is not None and value.isdigit() else None

    def _stat_answer(self, opaque: int, name: str) -> int | None:
        status, value = self._stat_reply(opaque, name)
        if status in _AUTH_STATUS:
            self.server_status(status)
        return value

    def stat(self, name: str, group: bytes = b"") -> int | None:
        """One number from the server's statistics (general, or *group*: b"settings"),
        None if it has none."""
        opaque = self._next_opaques(1)
        self._request([frames.stat_request(opaque, group)])
        return self._stat_answer(opaque, name)

    # -- storing and reading back ------------------------------------------------------
    def store(self, op: str, items: abc.Sequence[Item], exptime: int,
              count_evictions: bool) -> tuple[list[tuple[Item, CopyError]], int | None | bool]:
        """Store *items* (distinct keys) with quiet *op* commands and a closing no-op:
        (the items refused, each with why; the eviction counter read after them, or False
        when not asked)."""
        first = self._next_opaques(len(items) + 1)
        noop = first + len(items)
        code = QUIET_STORE[op]
        parts = []
        for number, item in enumerate(items, first):
            parts.append(request(code, number, item.key, struct.pack("!LL", item.flags, exptime),
                                 len(item.data)))
            parts.append(item.data)
        parts.append(request(NOOP, noop))
        stat = self._next_opaques(1) if count_evictions else None
        if stat is not None:
            parts.append(frames.stat_request(stat))
        try:
            self._request(parts)
        except WireFault:
            self._explain_close()
            raise
        failures = self._store_replies(op, items, first, noop, code)
        evictions: int | None | bool = False
        if stat is not None:  # the items are stored (the no-op is answered) whatever follows
            try:
                evictions = self._stat_answer(stat, "evictions")
            except (WireFault, ServerError):
                evictions = None
        return failures, evictions

    def _explain_close(self) -> None:
        """The server dropped us while we sent: an error reply received first says why."""
        while len(self.wire.inbox) >= frames.HEADER.size:
            try:
                reply = frames.reply(self.wire, MAX_REPLY_BODY)
            except WireFault:
                return
            if reply.status:
                self.server_status(reply.status)

    def _store_replies(self, op: str, items: abc.Sequence[Item], first: int, noop: int,
                       code: int) -> list[tuple[Item, CopyError]]:
        failures = []
        answered = set()
        while True:
            reply = frames.reply(self.wire, MAX_REPLY_BODY)
            if reply.opaque == noop and reply.opcode == NOOP:
                return failures
            if not first <= reply.opaque < noop or reply.opaque in answered:
                raise WireFault("answered a request never sent (bad opaque)")
            if reply.opcode != code:
                raise WireFault(f"answered another command (opcode 0x{reply.opcode:02x})")
            answered.add(reply.opaque)
            if reply.status:
                self.server_status(reply.status)
                item = items[reply.opaque - first]
                failures.append((item, item_error(op, item, reply.status)))

    def read_back(self, expected: abc.Mapping[bytes, tuple[int, int, bytes]]) -> dict[bytes, str]:
        """Read *expected*'s keys (key -> flags, length, digest) with quiet gets; return
        key -> what is wrong, for each item missing or not as stored."""
        keys = list(expected)
        first = self._next_opaques(len(keys) + 1)
        noop = first + len(keys)
        parts = [request(GETKQ, n, k) for n, k in enumerate(keys, first)]
        parts.append(request(NOOP, noop))
        problems = {}
        self._request(parts)
        answered, found = set(), set()
        largest = max(length for _, length, _ in expected.values())
        while True:
            reply = frames.reply(self.wire, MAX_VALUE_BODY, max_kept=largest)
            if reply.opaque == noop and reply.opcode == NOOP:
                break
            if not first <= reply.opaque < noop or reply.opaque in answered:
                raise WireFault("answered a request never sent (bad opaque)")
            answered.add(reply.opaque)
            key = keys[reply.opaque - first]
            if reply.status:
                self.server_status(reply.status)
                continue  # not found: reported as missing below
            found.add(reply.opaque)
            problem = compare(expected[key], reply.flags, reply.length, reply.value)
            if problem:
                problems[key] = problem
        for number, key in enumerate(keys, first):
            if number not in found:
                problems[key] = "missing after the run"
        return problems

