"""Small fake peers on 127.0.0.1 for faults a real memcached never shows: each
speaks just enough of the binary protocol to get memccp to the point of the fault."""

import socket
import struct
import threading
import time
from typing import Callable, List, NamedTuple, Optional

HEADER = struct.Struct("!BBHBBHLLQ")
NOOP, STAT, SETQ = 0x0A, 0x10, 0x11


class Request(NamedTuple):
    opcode: int
    opaque: int
    key: bytes
    body: bytes


def reply(opcode: int, opaque: int, status: int = 0, key: bytes = b"", value: bytes = b"",
          bodylen: Optional[int] = None) -> bytes:
    """A binary-protocol reply (bodylen: announce another body length than sent)."""
    length = len(key) + len(value) if bodylen is None else bodylen
    return HEADER.pack(0x81, opcode, len(key), 0, 0, status, length, opaque, 0) + key + value


def _exactly(sock: socket.socket, size: int) -> Optional[bytes]:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def requests(sock: socket.socket):
    """Each request the client sends, until it closes."""
    while True:
        head = _exactly(sock, HEADER.size)
        if head is None:
            return
        _magic, opcode, keylen, extlen, _t, _v, bodylen, opaque, _cas = HEADER.unpack(head)
        body = _exactly(sock, bodylen) if bodylen else b""
        if body is None:
            return
        yield Request(opcode, opaque, body[extlen:extlen + keylen], body)


def drain(sock: socket.socket) -> None:
    """Read and drop what the client sends until it closes."""
    while sock.recv(1 << 16):
        pass


class Peer:
    """A listener on 127.0.0.1 serving each connection with *serve*(sock) in a thread."""

    def __init__(self, serve: Callable[[socket.socket], None], receive_buffer: int = 0) -> None:
        self.serve = serve
        self.listener = socket.socket()
        if receive_buffer:
            self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.address = "127.0.0.1:%d" % self.listener.getsockname()[1]
        self.accepted = 0
        self._socks: List[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            self._socks.append(sock)
            threading.Thread(target=self._run, args=(sock,), daemon=True).start()

    def _run(self, sock: socket.socket) -> None:
        try:
            self.serve(sock)
        except OSError:
            pass
        finally:
            sock.close()

    def close(self) -> None:
        self.listener.close()
        for sock in self._socks:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def like_memcached(on_store: Callable, on_noop: Callable) -> Callable[[socket.socket], None]:
    """A peer that answers STAT as an empty memcached and hands quiet stores and no-ops
    to *on_store*(sock, request) and *on_noop*(sock, request)."""
    def serve(sock: socket.socket) -> None:
        for request in requests(sock):
            if request.opcode == STAT:
                sock.sendall(reply(STAT, request.opaque, key=b"evictions", value=b"0")
                             + reply(STAT, request.opaque))
            elif request.opcode == NOOP:
                if on_noop(sock, request) is False:
                    return
            elif on_store(sock, request) is False:
                return
    return serve


def _quiet(sock, request):
    return True


def _normal_noop(sock, request):
    sock.sendall(reply(NOOP, request.opaque))


def _stall(sock, request):
    sock.sendall(reply(NOOP, request.opaque)[:10])
    drain(sock)
    return False


def _trickle(sock, request):
    for byte in reply(NOOP, request.opaque):
        sock.sendall(bytes([byte]))
        time.sleep(0.2)  # the fault itself: a peer this slow must fail on --timeout
    drain(sock)
    return False


def _absurd(sock, request):
    sock.sendall(reply(NOOP, request.opaque, bodylen=0xFFFFFFFF))
    for _ in range(100):
        sock.sendall(b"x")
        time.sleep(0.5)
    return False


def _flood_stats(sock: socket.socket) -> None:
    for request in requests(sock):
        if request.opcode == STAT:
            entry = reply(STAT, request.opaque, key=b"pid", value=b"1")
            while True:
                sock.sendall(entry * 1000)


def _http(sock: socket.socket) -> None:
    sock.recv(1 << 16)
    sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


#: name -> (how the peer serves a connection, the reason memccp gives for its files)
FAULTS = {
    "protocol garbage (HTTP)": (_http, "not a binary-protocol memcached (it answered 'HTTP/1.1 400 Bad')"),
    "bad opaque": (like_memcached(_quiet, lambda s, r: s.sendall(reply(NOOP, r.opaque + 1000))),
                   "answered a request never sent (bad opaque)"),
    "unknown status": (like_memcached(lambda s, r: s.sendall(reply(r.opcode, r.opaque, status=0x99)),
                                      _normal_noop),
                       "unexpected reply status 0x99"),
    "closed connection": (like_memcached(lambda s, r: False, _normal_noop),
                          "connection closed by the server"),
    "stall mid-reply": (like_memcached(_quiet, _stall), "no answer within 0.5 s"),
    "trickle": (like_memcached(_quiet, _trickle), "no answer within 0.5 s"),
    "flood": (_flood_stats, "sends endless statistics"),
    "absurd body length": (like_memcached(_quiet, _absurd),
                           "malformed reply (body of 4294967295 bytes announced)"),
}


class SlowLink:
    """A relay to *target* that forwards client-to-server bytes at about *rate* bytes/s."""

    def __init__(self, target: str, rate: int) -> None:
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.rate = rate
        self.peer = Peer(self._relay, receive_buffer=32 << 10)  # a small window, as on a slow link
        self.address = self.peer.address

    def _relay(self, client: socket.socket) -> None:
        server = socket.create_connection(self.target)
        back = threading.Thread(target=self._copy, args=(server, client), daemon=True)
        back.start()
        step = self.rate // 20
        try:
            while True:
                chunk = client.recv(step)
                if not chunk:
                    break
                server.sendall(chunk)
                time.sleep(0.05)  # the slowness of the link, not a wait for a result
        finally:
            server.close()

    @staticmethod
    def _copy(src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                chunk = src.recv(1 << 16)
                if not chunk:
                    break
                dst.sendall(chunk)
        except OSError:
            pass

    def close(self) -> None:
        self.peer.close()


# -- text and meta peers ----------------------------------------------------------

STORES = (b"set", b"add", b"replace", b"ms")


def text_requests(sock: socket.socket):
    """(words of the command line, the data block of a store) for each request the client
    sends in the text or meta protocol, until it closes."""
    reader = sock.makefile("rb")
    while True:
        line = reader.readline(4096)
        if not line:
            return
        words = line.split()
        data = b""
        if words and words[0] in STORES:
            length = int(words[2] if words[0] == b"ms" else words[4])
            data = reader.read(length + 2)[:-2]
        yield words, data


def stored(words: List[bytes]) -> bytes:
    """The reply to a successful store: STORED, or HD with the request's opaque (meta)."""
    return b"HD " + next(w for w in words if w.startswith(b"O")) + b"\r\n" \
        if words[0] == b"ms" else b"STORED\r\n"


def like_text_memcached(on_store: Callable) -> Callable[[socket.socket], None]:
    """A peer that answers version, mn and stats as an empty memcached and hands each store
    to *on_store*(sock, words, data, count) (count: stores seen on this connection before it),
    which answers it, or returns False to end the connection."""
    def serve(sock: socket.socket) -> None:
        count = 0
        for words, data in text_requests(sock):
            if words[:1] == [b"version"]:
                sock.sendall(b"VERSION 1.6.99\r\n")
            elif words[:1] == [b"mn"]:
                sock.sendall(b"MN\r\n")
            elif words[:1] == [b"stats"]:
                sock.sendall(b"STAT evictions 0\r\nEND\r\n" if len(words) == 1 else b"END\r\n")
            elif words[:1] and words[0] in STORES:
                if on_store(sock, words, data, count) is False:
                    return
                count += 1
            else:
                sock.sendall(b"ERROR\r\n")
    return serve


def answer(line: bytes) -> Callable:
    """A store handler that answers every store with *line*."""
    return lambda sock, words, data, count: sock.sendall(line + b"\r\n")


def _text_stall(sock, words, data, count):
    drain(sock)
    return False


def close_at_second(sock, words, data, count):
    """Answer the first store of a connection, close at the next."""
    if count:
        return False
    sock.sendall(stored(words))


#: name -> (how the peer serves a connection, the reason memccp gives for its files,
#: the dialects the fault is for)
TEXT_FAULTS = {
    "CLIENT_ERROR": (like_text_memcached(answer(b"CLIENT_ERROR bad data chunk")),
                     "refused a request: 'CLIENT_ERROR bad data chunk'", ("text", "meta")),
    "ERROR": (like_text_memcached(answer(b"ERROR")),
              "the server does not know this command (it answered 'ERROR')", ("text", "meta")),
    "garbage reply": (like_text_memcached(answer(b"HTTP/1.1 400 Bad Request")),
                      "not a text-protocol memcached (it answered 'HTTP/1.1 400 Bad Request')",
                      ("text", "meta")),
    "stall": (like_text_memcached(_text_stall), "no answer within 0.5 s", ("text", "meta")),
    "bad opaque": (like_text_memcached(lambda s, w, d, c: s.sendall(b"HD O%d\r\n" % (c + 1000))),
                   "answered a request never sent (bad opaque)", ("meta",)),
}


def like_twemproxy(version: bytes, items: dict, reset: bool = False) -> Callable[[socket.socket], None]:
    """A peer acting as twemproxy: it closes the connection at a binary request (*reset*:
    without reading it, so the close is a reset), at mn and at stats, answers version with
    the line *version*, and stores set lines into *items*."""
    def serve(sock: socket.socket) -> None:
        if sock.recv(1, socket.MSG_PEEK)[:1] == b"\x80":
            if not reset:
                sock.recv(1 << 16)  # read, then closed: a FIN, not a reset for unread bytes
            return
        for words, data in text_requests(sock):
            if words[:1] == [b"version"]:
                sock.sendall(version + b"\r\n")
            elif words[:1] != [b"set"]:
                return
            else:
                items[words[1]] = (int(words[2]), data)
                sock.sendall(b"STORED\r\n")
    return serve
