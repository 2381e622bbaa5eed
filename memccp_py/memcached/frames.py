"""Binary-protocol framing: request headers, and replies read from a Wire with bounds.

Every reply is checked before its body is read (magic, announced lengths, opaque), so a
peer that is not memcached fails with a reason instead of making us hold its bytes.
"""

from __future__ import annotations

import struct

from memccp_py.memcached.transport import PROGRESS_BYTES, Wire, WireFault
from memccp_py.report import show

HEADER = struct.Struct("!BBHBBHLLQ")
REQUEST, RESPONSE = 0x80, 0x81
NOOP, STAT, GETKQ, VERSION = 0x0A, 0x10, 0x0D, 0x0B
QUIET_STORE = {"set": 0x11, "add": 0x12, "replace": 0x13}

#: The first bytes a text-protocol server answers to a request it cannot parse.
TEXT_ERRORS = (b"ERROR", b"CLIENT_ERROR", b"SERVER_ERROR")


def request(opcode: int, opaque: int, key: bytes = b"", extras: bytes = b"", value_length: int = 0,
            cas: int = 0) -> bytes:
    """A request header with its extras and key (the value, if any, follows it)."""
    return HEADER.pack(REQUEST, opcode, len(key), len(extras), 0, 0,
                       len(key) + len(extras) + value_length, opaque, cas) + extras + key


def stat_request(opaque: int, group: bytes = b"", probe: bool = False) -> bytes:
    """STAT *group*. *probe*: its last byte is a newline, so a text-protocol server reads it
    as one line it answers with ERROR at once, before anything else is sent (a binary
    server ignores the CAS field of a STAT)."""
    return request(STAT, opaque, group, cas=0x0A if probe else 0)


class Reply:
    """One binary-protocol reply: opcode, status, opaque, key, extras and value."""

    __slots__ = ("opcode", "status", "opaque", "extras", "key", "value", "length")

    def __init__(self, opcode: int, status: int, opaque: int, extras: bytes, key: bytes,
                 value: bytes | None, length: int) -> None:
        self.opcode, self.status, self.opaque = opcode, status, opaque
        self.extras, self.key, self.value, self.length = extras, key, value, length

    @property
    def flags(self) -> int | None:
        """The item's flags (a get's extras), None if the reply has none."""
        return struct.unpack("!L", self.extras)[0] if len(self.extras) == 4 else None


def not_binary(wire: Wire) -> str:
    """Why the bytes at the head of the inbox are no binary-protocol reply."""
    return f"not a binary-protocol memcached (it answered '{show(bytes(wire.inbox[:16]))}')"


def first_header(wire: Wire, max_body: int) -> None:
    """Check the head of the first reply on a connection: a text server's error line is
    seen as soon as it is complete (a WireFault), not after waiting for a whole header
    that never comes."""
    inbox = wire.inbox
    while len(inbox) < HEADER.size:
        if inbox[:1] and inbox[0] != RESPONSE and b"\n" in inbox:
            raise WireFault(not_binary(wire))
        wire.fill(len(inbox) + 1)
    header(wire, max_body)


def header(wire: Wire, max_body: int) -> tuple[int, int, int, int, int, int]:
    """(opcode, key length, extras length, status, body length, opaque) of the next
    reply, its header checked and left in the inbox."""
    wire.fill(HEADER.size)
    magic, opcode, keylen, extlen, _type, status, bodylen, opaque, _cas = \
        HEADER.unpack_from(wire.inbox)
    if magic != RESPONSE:
        raise WireFault(not_binary(wire))
    if bodylen > max_body or keylen + extlen > bodylen:
        raise WireFault(f"malformed reply (body of {bodylen} bytes announced)")
    return opcode, keylen, extlen, status, bodylen, opaque


def reply(wire: Wire, max_body: int, max_kept: int | None = None) -> Reply:
    """The next reply. A body over *max_body* is a fault; a value over *max_kept*
    (default: any allowed) is read and dropped (``value`` None, ``length`` its size)."""
    opcode, keylen, extlen, status, bodylen, opaque = header(wire, max_body)
    del wire.inbox[:HEADER.size]
    head = wire.take(extlen + keylen)
    length = bodylen - extlen - keylen
    if max_kept is not None and length > max_kept:
        wire.skip(length)
        value = None
    else:
        value = wire.take(length)
    return Reply(opcode, status, opaque, head[:extlen], head[extlen:], value, length)


def stat_value(wire: Wire, opaque: int, name: bytes, max_body: int,
               max_count: int) -> tuple[int, bytes | None]:
    """Read a whole STAT answer (replies up to the one with an empty key) and return
    (status, the value of the statistic *name* or None). The same checks as
    :func:`reply`, parsed in place: a server answers some ninety statistics, which
    are walked in the inbox and dropped a batch at a time."""
    value = None
    inbox, unpack, size = wire.inbox, HEADER.unpack_from, HEADER.size
    at = 0
    for _ in range(max_count):
        if len(inbox) < at + size:
            wire.fill(at + size)
        magic, code, keylen, extlen, _type, status, bodylen, got, _cas = unpack(inbox, at)
        if magic != RESPONSE or bodylen > max_body or keylen + extlen > bodylen:
            del inbox[:at]
            header(wire, max_body)  # raises, saying what is wrong
        if got != opaque:
            raise WireFault("answered a request never sent (bad opaque)")
        if code != STAT:
            raise WireFault(f"answered another command (opcode 0x{code:02x})")
        end = at + size + bodylen
        if len(inbox) < end:
            wire.fill(end)
        if status or not keylen:
            del inbox[:end]
            return status, value
        start = at + size + extlen
        if keylen == len(name) and inbox[start:start + keylen] == name:
            value = bytes(inbox[start + keylen:end])
        at = end
        if at >= PROGRESS_BYTES:  # a flood of statistics is never held whole
            del inbox[:at]
            at = 0
    raise WireFault("sends endless statistics")
