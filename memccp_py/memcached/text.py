"""The text protocol (what C memccp speaks by default, and what every proxy speaks).

Stores go as ``set``/``add``/``replace`` lines, pipelined, never ``noreply``: every request
is answered, in order, so each refusal is named with its file. Only lines memcached can
parse are ever sent (keys are checked first), so a value is never read as commands.
"""

from __future__ import annotations

import re
from collections import abc

from memccp_py.errors import (
    CopyError,
    ItemTooLargeError,
    KeyExistsError,
    KeyNotFoundError,
    StoreError,
)
from memccp_py.memcached.items import TOO_LARGE, compare
from memccp_py.memcached.transport import (
    MAX_STATS,
    MAX_VALUE_BODY,
    Closed,
    Rejected,
    Wire,
    WireFault,
)
from memccp_py.records import Item
from memccp_py.report import printable, show

#: No reply line of memcached is longer (a VALUE line with a 250-byte key, an error text).
MAX_LINE = 2048
#: Bytes a text-protocol key cannot hold: they end the key, or the line.
_UNCARRIED = re.compile(rb"[\x00-\x20]")
#: memcached reads a text-protocol expiry as a signed 32-bit number.
MAX_TEXT_EXPIRY = (1 << 31) - 1
_CLOSES = b"ERROR"


def text_key_problem(key: bytes) -> str | None:
    """Why the text protocol cannot carry *key* (a blank or a control byte), or None."""
    found = _UNCARRIED.search(key)
    if found is None:
        return None
    bad = found.group()[0]
    what = "a space" if bad == 0x20 else f"the control byte \\x{bad:02x}"
    return (f"key '{show(key)}' has {what}, which the text protocol cannot carry "
            "(--escape=nginx escapes it; --protocol=binary or meta carries it)")


def refusal(op: str, item: Item, line: bytes) -> CopyError | None:
    """Why a store's reply *line* means *item* was not stored, None if it was; a
    WireFault for a reply that fails the server (an error of ours, or not memcached)."""
    if line in (b"STORED", b"HD"):
        return None
    key = show(item.key)
    if line in (b"NOT_STORED", b"NS", b"EXISTS", b"EX", b"NOT_FOUND", b"NF"):
        if op == "add":
            return KeyExistsError(f"key '{key}' already exists (--add stores only new keys)")
        if op == "replace":
            return KeyNotFoundError(f"key '{key}' does not exist (--replace changes only existing keys)")
        return StoreError(f"key '{key}': item not stored")
    if line.startswith(b"SERVER_ERROR"):
        said = line[13:].decode("utf-8", "replace")
        if "too large" in said:
            return ItemTooLargeError(TOO_LARGE)
        if "out of memory" in said:
            return StoreError("the server is out of memory")
        return StoreError(f"the server answered: {printable(said[:200]) or 'SERVER_ERROR'}")
    raise WireFault(unexpected(line))


def unexpected(line: bytes) -> str:
    """The fault a reply line that makes no sense here is."""
    if line == _CLOSES:
        return "the server does not know this command (it answered 'ERROR')"
    if line.startswith(b"CLIENT_ERROR"):
        return f"refused a request: '{show(line[:200])}'"
    return f"not a text-protocol memcached (it answered '{show(line[:40])}')"


class Text:
    """The text dialect of one connection."""

    name = "text"

    def __init__(self, conn) -> None:
        self.conn = conn
        self.wire: Wire | None = None

    def key_problem(self, key: bytes) -> str | None:
        return text_key_problem(key)

    def expiry_problem(self, exptime: int) -> str | None:
        """Why *exptime* cannot be sent: memcached would read it as negative, expired."""
        if exptime <= MAX_TEXT_EXPIRY:
            return None
        return (f"--expire {exptime} is over {MAX_TEXT_EXPIRY}, which memcached reads as a "
                f"negative time in the {self.name} protocol: the item would expire at once "
                "(--protocol=binary stores it)")

    def _request(self, parts: list[bytes]) -> None:
        self.wire.start()
        self.wire.send(parts)

    def line(self) -> bytes:
        return self.wire.line(MAX_LINE)

    # -- connecting ----------------------------------------------------------------
    def hello(self) -> None:
        """Make sure the server speaks this dialect before anything else goes out. A
        SERVER_ERROR is a text answer too: a proxy (twemproxy) hands ``version`` to one of
        its backends and says so when that one is down, while the others may be up."""
        self._request([b"version\r\n"])
        self._expect(b"VERSION ", b"SERVER_ERROR ")

    def _expect(self, *start: bytes) -> None:
        try:
            line = self.line()
        except WireFault:
            if not self.wire.heard:
                raise Rejected("it closed the connection at the first request") from None
            raise
        if not line.startswith(start):
            if line == _CLOSES:
                raise Rejected("it answered 'ERROR'")
            raise WireFault(unexpected(line))

    def attach(self, wire: Wire, stats: bool) -> int | None:
        """Start speaking on *wire*: check the dialect first, on every connection (a server
        restarted behind the same address may speak another, and would read a file's
        bytes as commands); *stats*: ask for the eviction counter (alone: a proxy that
        knows no stats closes the connection; the caller then calls again with *stats*
        False). Return it or None."""
        self.wire = wire
        self.hello()
        return self.stat("evictions") if stats else None

    # -- statistics ----------------------------------------------------------------
    def stat(self, name: str, group: bytes = b"") -> int | None:
        """One number from ``stats`` (or ``stats GROUP``), None if the server has none.
        Raises NoStats when the server refuses the command (a proxy)."""
        self._request([b"stats" + (b" " + group if group else b"") + b"\r\n"])
        return self.stat_answer(name)

    def stat_answer(self, name: str) -> int | None:
        wanted = b"STAT " + name.encode() + b" "
        value = None
        for count in range(MAX_STATS):
            try:
                line = self.line()
            except Closed:
                if count == 0 and not self.wire.inbox:  # closed at the question: a proxy
                    raise NoStats() from None
                raise
            if line == b"END":
                return int(value) if value is not None and value.isdigit() else None
            if line == _CLOSES:
                raise NoStats()
            if not line.startswith(b"STAT "):
                raise WireFault(unexpected(line))
            if line.startswith(wanted):
                value = line[len(wanted):]
        raise WireFault("sends endless statistics")

    # -- storing and reading back ------------------------------------------------------
    def store_request(self, op: str, item: Item, exptime: int, number: int) -> bytes:
        return b"%s %s %d %d %d\r\n" % (op.encode(), item.key, item.flags, exptime, len(item.data))

    def store(self, op: str, items: abc.Sequence[Item], exptime: int,
              count_evictions: bool) -> tuple[list[tuple[Item, CopyError]], int | None | bool]:
        """Store *items*, pipelined; (the items refused with why; the eviction counter
        read after them, or False when not asked)."""
        parts = []
        for number, item in enumerate(items):
            parts += (self.store_request(op, item, exptime, number), item.data, b"\r\n")
        parts += self.closing(count_evictions)
        self._request(parts)
        failures = []
        for number, item in enumerate(items):
            problem = refusal(op, item, self.store_reply(number))
            if problem is not None:
                failures.append((item, problem))
        self.closed()
        evictions: int | None | bool = False
        if count_evictions:  # the items are answered whatever follows
            try:
                evictions = self.stat_answer("evictions")
            except (WireFault, NoStats):
                evictions = None
        return failures, evictions

    def closing(self, count_evictions: bool) -> list[bytes]:
        """What follows the stores: a barrier (text replies name no request: one reply
        too many or too few shows there), and the eviction counter's question, if asked."""
        return [b"version\r\n"] + ([b"stats\r\n"] if count_evictions else [])

    def closed(self) -> None:
        """Read the barrier's answer: anything else means replies went out of step."""
        line = self.line()
        if not line.startswith((b"VERSION ", b"SERVER_ERROR")):
            raise WireFault(f"answered out of step (after the last store, '{show(line[:40])}')")

    def store_reply(self, number: int) -> bytes:
        return self.line()

    def read_back(self, expected: abc.Mapping[bytes, tuple[int, int, bytes]]) -> dict[bytes, str]:
        """Read *expected*'s keys back (key -> flags, length, digest), one ``get`` each,
        pipelined; return key -> what is wrong."""
        keys = list(expected)
        self._request([b"get " + key + b"\r\n" for key in keys])
        largest = max(length for _, length, _ in expected.values())
        problems = {}
        for key in keys:
            line = self.line()
            if line == b"END":
                problems[key] = "missing after the run"
                continue
            fields = line.split(b" ")
            if len(fields) < 4 or fields[0] != b"VALUE" or fields[1] != key \
                    or not fields[2].isdigit() or not fields[3].isdigit():
                raise WireFault(unexpected(line))
            problem = self._value(expected[key], int(fields[2]), int(fields[3]), largest)
            if self.line() != b"END":
                raise WireFault("sent more than one value for one key")
            if problem:
                problems[key] = problem
        return problems

    def _value(self, expected: tuple[int, int, bytes], flags: int, length: int,
               largest: int) -> str | None:
        """Read a value of *length* bytes and its CR LF; what differs from *expected*."""
        if length > MAX_VALUE_BODY:
            raise WireFault(f"malformed reply (value of {length} bytes announced)")
        if length > largest:
            self.wire.skip(length)
            value = None
        else:
            value = self.wire.take(length)
        if self.wire.take(2) != b"\r\n":
            raise WireFault("malformed reply (a value not followed by CR LF)")
        return compare(expected, flags, length, value)


class NoStats(Exception):
    """The server does not answer ``stats`` (a proxy): eviction counts and item size are unknown."""
