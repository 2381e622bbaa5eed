"""The socket under a connection: bounded, progress-timed I/O, whatever the dialect.

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

#: Moving this many bytes (either way) counts as progress and restarts the timeout.
PROGRESS_BYTES = 64 << 10
#: While a request is still being sent, at most this many reply bytes are buffered.
MAX_BUFFERED = 1 << 20
#: The largest value a read-back may announce (memcached -I is at most 1 GiB), in any dialect.
MAX_VALUE_BODY = (1 << 30) + 4 + 250
#: A statistics answer has this many lines at most (memcached: about 100), in any dialect.
MAX_STATS = 1000


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


class Closed(WireFault):
    """The server closed the connection."""


class Rejected(Exception):
    """The server refuses a dialect: it closed on the first request without a word, or
    answered it with a text-protocol error line."""


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


def _fault(exc: OSError, timeout: float | None) -> WireFault:
    """The fault a socket error is: a reset is the server closing (a proxy that closes
    without reading our request resets the connection)."""
    reason = describe_socket_error(exc, timeout)
    if isinstance(exc, (ConnectionResetError, BrokenPipeError)):
        return Closed(reason)
    return WireFault(reason)


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
        #: whether the peer has sent anything at all (a server that closes on our first
        #: request without a word rejects the dialect, as a proxy does)
        self.heard = False

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
            # while sending, replies are taken in only while there is room for them: a peer
            # that floods us then is waited on for room to send, not spun on
            room = not write or len(self.inbox) < MAX_BUFFERED
            poller.register(self.sock, (select.POLLIN if room else 0) | (select.POLLOUT if write else 0))
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
        except OSError as exc:  # a reset (our request unread) is a close all the same
            raise _fault(exc, self.timeout) from None
        if not chunk:
            raise Closed("connection closed by the server")
        self.heard = True
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
                    raise _fault(exc, self.timeout) from None
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

    def fill(self, size: int) -> None:
        """Wait until the inbox holds *size* bytes."""
        while len(self.inbox) < size:
            readable, _ = self._wait(write=False)
            if readable:
                self._receive()

    def take(self, size: int) -> bytes:
        """The next *size* bytes received."""
        self.fill(size)
        data = bytes(self.inbox[:size])
        del self.inbox[:size]
        return data

    def skip(self, size: int) -> None:
        """Read and drop *size* bytes, holding little of them at a time."""
        while size:
            if not self.inbox:
                self.fill(1)
            step = min(size, len(self.inbox))
            del self.inbox[:step]
            size -= step

    def line(self, limit: int) -> bytes:
        """The next text-protocol line, without its CR LF; a fault if none ends within
        *limit* bytes (no memcached answers such a line)."""
        inbox = self.inbox
        searched = 0
        while True:
            end = inbox.find(b"\n", searched)
            if end >= 0:
                break
            if len(inbox) > limit:
                raise WireFault(f"sends a line longer than {limit} bytes: not memcached")
            searched = len(inbox)
            self.fill(searched + 1)
        if end > limit:
            raise WireFault(f"sends a line longer than {limit} bytes: not memcached")
        text = bytes(inbox[:end - 1 if end and inbox[end - 1] == 13 else end])
        del inbox[:end + 1]
        return text
