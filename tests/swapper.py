"""The attacker of tests/test_link_races.py: exchange two names over and over.

Usage: python3 swapper.py SECONDS A B [A2 B2 ...]

Each pair is exchanged atomically with renameat2(RENAME_EXCHANGE), pair after pair, in a
loop, as whoever runs this (the tests run it as nobody). After the first exchange, one
line "ready" on standard output. It stops after SECONDS, when its standard input closes,
or on SIGTERM, putting every pair back as it found it, and says "swaps N" (N: exchanges
made) on standard output. An exchange that fails (a name gone for a moment) is counted as
a miss, not an error; "misses N" follows "swaps N".

Imports only the standard library: the tests run its source with python3 -I -c, as another
user who may not be able to read the checkout.
"""

import ctypes
import errno
import os
import platform
import signal
import sys
import threading
import time
from typing import Callable, List, Tuple

AT_FDCWD = -100
RENAME_EXCHANGE = 2
SYSCALL_RENAMEAT2 = {"x86_64": 316, "aarch64": 276, "riscv64": 276, "loongarch64": 276}


def exchanger() -> Callable[[bytes, bytes], int]:
    """A function exchanging two names: 0 on success, else the errno."""
    libc = ctypes.CDLL(None, use_errno=True)
    if hasattr(libc, "renameat2"):
        call = libc.renameat2
        call.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                         ctypes.c_uint)

        def exchange(a: bytes, b: bytes) -> int:
            return 0 if call(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) == 0 else ctypes.get_errno()
        return exchange
    number = SYSCALL_RENAMEAT2[platform.machine()]
    syscall = libc.syscall
    syscall.restype = ctypes.c_long

    def exchange_by_number(a: bytes, b: bytes) -> int:
        done = syscall(ctypes.c_long(number), ctypes.c_int(AT_FDCWD), a, ctypes.c_int(AT_FDCWD),
                       b, ctypes.c_uint(RENAME_EXCHANGE))
        return 0 if done == 0 else ctypes.get_errno()
    return exchange_by_number


def main(argv: List[str]) -> int:
    seconds = float(argv[0])
    names = [os.fsencode(name) for name in argv[1:]]
    pairs: List[Tuple[bytes, bytes]] = list(zip(names[::2], names[1::2]))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def watch_stdin() -> None:
        try:
            while os.read(0, 4096):
                pass
        except OSError:
            pass
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    exchange = exchanger()
    deadline = time.monotonic() + seconds
    flipped = [False] * len(pairs)
    swaps = misses = 0
    ready = False
    while not stop.is_set() and time.monotonic() < deadline:
        for number, (a, b) in enumerate(pairs):
            code = exchange(a, b)
            if code == 0:
                swaps += 1
                flipped[number] = not flipped[number]
            elif code in (errno.ENOENT, errno.EBUSY):
                misses += 1
            else:
                print(f"swapper: {os.fsdecode(a)} <-> {os.fsdecode(b)}: {os.strerror(code)}",
                      file=sys.stderr)
                return 1
        if not ready and swaps:
            print("ready", flush=True)
            ready = True
    for number, (a, b) in enumerate(pairs):
        if flipped[number] and exchange(a, b) == 0:  # back as found
            swaps += 1
    print(f"swaps {swaps}\nmisses {misses}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
