"""The socket under a connection: bounded, progress-timed I/O and reply framing.

A server fails when it makes no progress for ``timeout`` seconds: progress is
the request under way sent in full, or :data:`PROGRESS_BYTES` moved either way
(sent, received, or drained from the send queue towards a slow server).
A slow but live link therefore never times out, while a peer that stalls,
trickles, floods or announces an absurd body fails within ``timeout`` seconds of
its last real progress, and never makes us hold more than one reply in memory.
Every fault raises :class:`WireFault` with a short reason; the caller names the
server.
"""

from __future__ import annotations

import fcntl
import select
import socket
import struct
import termios
import time
from collections import abc

from memccp_py.keys import show

#: Moving this many bytes (either way) counts as progress and restarts the timeout.
PROGRESS_BYTES = 64 << 10
#: While a request is still being sent, at most this many reply bytes are buffered.
MAX_BUFFERED = 1 << 20
HEADER = struct.Struct("!BBHBBHLLQ")
REQUEST, RESPONSE = 0x80, 0x81


def _numeric_family(host: str) -> int | None:
    """AF_INET or AF_INET6 when *host* is an address rather than a name, else None."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
            return family
        except OSError:
            pass
    return None


def dial(server, timeout: float | None) -> socket.socket:
    """A connected socket to *server* (a servers.Server): its unix socket, its address (no
    resolver asked), or each address of its name in turn; TCP without Nagle's delay."""
    if server.path is not None:
        family, address = socket.AF_UNIX, server.path
    else:
        family, address = _numeric_family(server.host), (server.host, server.port)
    if family is None:  # a name
        sock = socket.create_connection(address, timeout=timeout)
    else:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(address)
        except BaseException:
            sock.close()
            raise
    if server.path is None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class WireFault(Exception):
    """The server broke the exchange: closed, stalled or sent something not memcached."""


class Reply:
    """One binary-protocol reply: opcode, status, opaque, key, extras and value."""

    __slots__ = ("opcode", "status", "opaque", "extras", "key", "value", "length")

    def __init__(self, opcode: int, status: int, opaque: int, extras: bytes, key: bytes,
                 value: bytes | None, length: int) -> None:
        self.opcode, self.status, self.opaque = opcode, status, opaque
        self.extras, self.key, self.value, self.length = extras, key, value, length


def describe_socket_error(exc: BaseException, timeout: float | None) -> str:
    """A short human reason for a socket-level failure."""
    if isinstance(exc, socket.timeout):
        return f"no answer within {timeout:g} s" if timeout else "timed out"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host name ({exc.strerror})"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, (ConnectionResetError, BrokenPipeError)):
        return "connection closed by the server"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[:1].lower() + exc.strerror[1:]
    return str(exc) or "connection closed by the server"


def _coalesced(parts: abc.Iterable[bytes]) -> abc.Iterator[bytes]:
    """*parts* with runs of small ones joined (fewer system calls); large ones as they are."""
    small: list[bytes] = []
    size = 0
    for part in parts:
        if len(part) >= PROGRESS_BYTES:
            if small:
                yield b"".join(small)
                small, size = [], 0
            yield part
            continue
        small.append(part)
        size += len(part)
        if size >= 4 * PROGRESS_BYTES:
            yield b"".join(small)
            small, size = [], 0
    if small:
        yield b"".join(small)


class Wire:
    """One open socket: send requests, read replies, both under the progress timeout."""

    def __init__(self, sock: socket.socket, timeout: float | None) -> None:
        self.sock = sock
        self.timeout = timeout
        sock.setblocking(False)
        self.inbox = bytearray()
        self._deadline: float | None = None
        self._moved = 0
        self._last_queued: int | None = None

    def close(self) -> None:
        self.sock.close()

    def start(self) -> None:
        """Progress: restart the timeout (a new request, a request sent, 64 KiB moved)."""
        self._moved = 0
        self._deadline = None if self.timeout is None else time.monotonic() + self.timeout

    def _count(self, moved: int) -> None:
        self._moved += moved
        if self._moved >= PROGRESS_BYTES:
            self.start()

    def _wait(self, write: bool) -> tuple[bool, bool]:
        while True:
            left = None if self._deadline is None else self._deadline - time.monotonic()
            if left is not None and left <= 0:
                raise WireFault(f"not reading what we send: no progress within {self.timeout:g} s"
                                if write else f"no answer within {self.timeout:g} s")
            if not write and left is not None:  # look at the send queue now and then
                left = min(left, self.timeout / 8)
            poller = select.poll()
            poller.register(self.sock, select.POLLIN | (select.POLLOUT if write else 0))
            events = 0
            for _fd, happened in poller.poll(None if left is None else max(1, int(left * 1000 + 0.999))):
                events |= happened
            if events:  # an error or hang-up shows when we read or send next
                trouble = bool(events & (select.POLLERR | select.POLLHUP | select.POLLNVAL))
                return bool(events & select.POLLIN) or trouble, bool(events & select.POLLOUT) or trouble
            if not write:
                self._count_drained()

    def _queued(self) -> int | None:
        """Bytes we sent that the server has not taken yet (Linux SIOCOUTQ), None if unknown."""
        try:
            return struct.unpack("i", fcntl.ioctl(self.sock.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0]
        except OSError:
            return None

    def _count_drained(self) -> None:
        """The request is sent but still draining over a slow link: that is progress too."""
        queued = self._queued()
        if queued is not None and self._last_queued is not None and queued < self._last_queued:
            self._count(self._last_queued - queued)
        self._last_queued = queued

    def _receive(self) -> None:
        try:
            chunk = self.sock.recv(PROGRESS_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            raise WireFault(describe_socket_error(exc, self.timeout)) from None
        if not chunk:
            raise WireFault("connection closed by the server")
        self.inbox += chunk
        self._count(len(chunk))

    def send(self, parts: abc.Iterable[bytes]) -> None:
        """Send *parts* in order, taking in replies meanwhile (the server may answer early)."""
        for part in _coalesced(parts):
            view = memoryview(part)
            while view:
                try:  # room in the send queue is the rule: wait only when there is none
                    sent = self.sock.send(view[:1 << 20])
                except (BlockingIOError, InterruptedError):
                    readable, _ = self._wait(write=True)
                    if readable and len(self.inbox) < MAX_BUFFERED:
                        self._receive()
                    continue
                except OSError as exc:
                    self._take_what_came()
                    raise WireFault(describe_socket_error(exc, self.timeout)) from None
                view = view[sent:]
                self._count(sent)
        self.start()
        self._last_queued = self._queued()

    def _take_what_came(self) -> None:
        """The socket failed while sending: keep what the server said before (an error
        reply may say why), as far as it is there already."""
        while len(self.inbox) < MAX_BUFFERED:
            try:
                chunk = self.sock.recv(PROGRESS_BYTES)
            except OSError:
                return
            if not chunk:
                return
            self.inbox += chunk

    def _fill(self, size: int) -> None:
        while len(self.inbox) < size:
            readable, _ = self._wait(write=False)
            if readable:
                self._receive()

    def take(self, size: int) -> bytes:
        """The next *size* bytes received."""
        self._fill(size)
        data = bytes(self.inbox[:size])
        del self.inbox[:size]
        return data

    def skip(self, size: int) -> None:
        """Read and drop *size* bytes, holding little of them at a time."""
        while size:
            if not self.inbox:
                self._fill(1)
            step = min(size, len(self.inbox))
            del self.inbox[:step]
            size -= step

    def _header(self, max_body: int) -> tuple[int, int, int, int, int, int]:
        """(opcode, key length, extras length, status, body length, opaque) of the next
        reply, its header checked and left in the inbox."""
        self._fill(HEADER.size)
        magic, opcode, keylen, extlen, _type, status, bodylen, opaque, _cas = \
            HEADER.unpack_from(self.inbox)
        if magic != RESPONSE:
            raise WireFault("not a binary-protocol memcached (it answered "
                            f"'{show(bytes(self.inbox[:16]))}')")
        if bodylen > max_body or keylen + extlen > bodylen:
            raise WireFault(f"malformed reply (body of {bodylen} bytes announced)")
        return opcode, keylen, extlen, status, bodylen, opaque

    def stat_value(self, opaque: int, opcode: int, name: bytes, max_body: int,
                   max_count: int) -> tuple[int, bytes | None]:
        """Read a whole STAT answer (replies up to the one with an empty key) and return
        (status, the value of the statistic *name* or None). The same checks as
        :meth:`reply`, parsed in place: a server answers some ninety statistics, which
        are walked in the inbox and dropped a batch at a time."""
        value = None
        inbox, unpack, size = self.inbox, HEADER.unpack_from, HEADER.size
        at = 0
        for _ in range(max_count):
            if len(inbox) < at + size:
                self._fill(at + size)
            magic, code, keylen, extlen, _type, status, bodylen, got, _cas = unpack(inbox, at)
            if magic != RESPONSE or bodylen > max_body or keylen + extlen > bodylen:
                del inbox[:at]
                self._header(max_body)  # raises, saying what is wrong
            if got != opaque:
                raise WireFault("answered a request never sent (bad opaque)")
            if code != opcode:
                raise WireFault(f"answered another command (opcode 0x{code:02x})")
            end = at + size + bodylen
            if len(inbox) < end:
                self._fill(end)
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

    def reply(self, max_body: int, max_kept: int | None = None) -> Reply:
        """The next reply. A body over *max_body* is a fault; a value over *max_kept*
        (default: any allowed) is read and dropped (``value`` None, ``length`` its size)."""
        opcode, keylen, extlen, status, bodylen, opaque = self._header(max_body)
        del self.inbox[:HEADER.size]
        head = self.take(extlen + keylen)
        length = bodylen - extlen - keylen
        if max_kept is not None and length > max_kept:
            self.skip(length)
            value = None
        else:
            value = self.take(length)
        return Reply(opcode, status, opaque, head[:extlen], head[extlen:], value, length)
