"""A minimal pipelined loader, the yardstick for memccp-py's bulk path: every file below
BASE stored under "/" + its path below BASE with quiet binary-protocol sets, written
straight to one socket in batches, one NOOP at the end. No options, no error handling
beyond counting error replies. Usage: raw_loader.py HOST PORT BASE"""

import os
import socket
import struct
import sys

SETQ, NOOP = 0x11, 0x0A
BATCH_BYTES, BATCH_ITEMS = 4 << 20, 250  # 4 buffers an item: within IOV_MAX (1024)
EXTRAS = bytes(8)  # flags 0, expiry 0


def header(opcode: int, key: bytes, value_length: int) -> bytes:
    return struct.pack(">BBHBBHIIQ", 0x80, opcode, len(key), len(EXTRAS), 0, 0,
                       len(EXTRAS) + len(key) + value_length, 0, 0)


def send_all(sock: socket.socket, buffers: list) -> None:
    while buffers:
        sent = sock.sendmsg(buffers)
        while buffers and sent >= len(buffers[0]):
            sent -= len(buffers[0])
            buffers.pop(0)
        if sent:
            buffers[0] = memoryview(buffers[0])[sent:]


def main() -> int:
    host, port, base = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    sock = socket.create_connection((host, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buffers, size = [], 0
    for root, _, names in os.walk(base):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as handle:
                value = handle.read()
            key = b"/" + os.fsencode(os.path.relpath(path, base))
            buffers += [header(SETQ, key, len(value)), EXTRAS, key, value]
            size += len(value)
            if size >= BATCH_BYTES or len(buffers) >= 4 * BATCH_ITEMS:
                send_all(sock, buffers)
                buffers, size = [], 0
    buffers.append(struct.pack(">BBHBBHIIQ", 0x80, NOOP, 0, 0, 0, 0, 0, 0, 0))
    send_all(sock, buffers)
    errors, reader = 0, sock.makefile("rb")
    while True:  # quiet sets answer only on error; the NOOP's answer ends the run
        head = reader.read(24)
        body_length = struct.unpack(">I", head[8:12])[0]
        reader.read(body_length)
        if head[1] == NOOP:
            break
        errors += 1
    print(f"raw loader: {errors} errors", file=sys.stderr) if errors else None
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
