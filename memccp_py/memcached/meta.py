"""The meta protocol (memcached 1.6+): ``ms`` stores and ``mg`` reads, each request naming
itself with an opaque, and ``mn`` as the barrier after them.

Replies are asked for every store (no ``q``): memcached's SERVER_ERROR lines carry no
opaque, so with ``q`` a refused item could not be told from the ones stored. Keys the
text protocol cannot carry go base64-encoded (``b``), as the meta protocol allows.
"""

from __future__ import annotations

import base64
from collections import abc

from memccp_py.files.keys import MAX_KEY_LENGTH
from memccp_py.memcached.text import Text, text_key_problem, unexpected
from memccp_py.memcached.transport import WireFault
from memccp_py.records import Item
from memccp_py.report import show

_MODES = {"set": b"MS", "add": b"ME", "replace": b"MR"}


def meta_key(key: bytes) -> tuple[bytes, bytes]:
    """*key* as a meta command carries it: (itself, no flag), or (base64, the ``b`` flag)."""
    if text_key_problem(key) is None:
        return key, b""
    return base64.b64encode(key), b" b"


class Meta(Text):
    """The meta dialect of one connection."""

    name = "meta"

    def key_problem(self, key: bytes) -> str | None:
        """base64 carries any key memcached's 250 bytes hold once encoded."""
        problem = text_key_problem(key)
        if problem is None or (len(key) + 2) // 3 * 4 <= MAX_KEY_LENGTH:
            return None
        return (problem.split(", which")[0] + f", and at {len(key)} bytes it is too long for "
                "the meta protocol's base64 form (--escape=nginx escapes it; --protocol=binary "
                "carries it)")

    def hello(self) -> None:
        self._request([b"mn\r\n"])
        self._expect(b"MN")

    def store_request(self, op: str, item: Item, exptime: int, number: int) -> bytes:
        key, b64 = meta_key(item.key)
        return b"ms %s %d F%d T%d %s O%d%s\r\n" % (key, len(item.data), item.flags, exptime,
                                                   _MODES[op], number, b64)

    def closing(self, count_evictions: bool) -> list[bytes]:
        return [b"mn\r\n"] + ([b"stats\r\n"] if count_evictions else [])

    def closed(self) -> None:
        line = self.line()
        if line != b"MN":
            raise WireFault(unexpected(line))

    def store_reply(self, number: int) -> bytes:
        """The reply to store *number*, its opaque checked and dropped."""
        line = self.line()
        if line[:2] in (b"HD", b"NS", b"EX", b"NF"):
            flags = line.split(b" ")
            if b"O%d" % number not in flags[1:]:
                raise WireFault("answered a request never sent (bad opaque)")
            return flags[0]
        return line

    def read_back(self, expected: abc.Mapping[bytes, tuple[int, int, bytes]]) -> dict[bytes, str]:
        """Read *expected*'s keys back with ``mg``, pipelined, then ``mn``."""
        keys = list(expected)
        parts = []
        for number, key in enumerate(keys):
            carried, b64 = meta_key(key)
            parts.append(b"mg %s s f v O%d%s\r\n" % (carried, number, b64))
        self._request(parts + [b"mn\r\n"])
        largest = max(length for _, length, _ in expected.values())
        problems = {}
        for number, key in enumerate(keys):
            fields = self.line().split(b" ")
            if f"O{number}".encode() not in fields[1:]:
                raise WireFault(unexpected(b" ".join(fields)) if fields[0] not in (b"VA", b"EN")
                                else "answered a request never sent (bad opaque)")
            if fields[0] == b"EN":
                problems[key] = "missing after the run"
                continue
            named = {f[:1]: f[1:] for f in fields[2:]}
            if fields[0] != b"VA" or not fields[1].isdigit() or not named.get(b"f", b"x").isdigit():
                raise WireFault(f"not a meta-protocol memcached (it answered '{show(b' '.join(fields)[:40])}')")
            problem = self._value(expected[key], int(named[b"f"]), int(fields[1]), largest)
            if problem:
                problems[key] = problem
        self.closed()
        return problems
