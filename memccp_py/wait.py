"""--wait: before copying, wait until every server answers a binary-protocol NOOP.

A memcached that is (re)starting refuses connections for a moment; a preload run
started beside it (the memccp-preload@ unit) waits here instead of failing every file.
"""

from __future__ import annotations

import socket
import time
from collections import abc

from memccp_py.errors import MemccpError
from memccp_py.servers import Server
from memccp_py.wire import dial

#: A binary-protocol NOOP request: magic 0x80, opcode 0x0a, nothing else.
NOOP = bytes([0x80, 0x0A]) + bytes(22)

#: Pause between two rounds of asking the servers that did not answer yet.
RETRY_SECONDS = 0.1


class ServersNotReadyError(MemccpError):
    """Some server did not answer within --wait seconds (exit 1)."""


def noop_problem(server: Server, timeout: float) -> str | None:
    """Why *server* does not answer a NOOP within *timeout* seconds, or None when it does."""
    try:
        with dial(server, timeout) as sock:
            sock.sendall(NOOP)
            head = b""
            while len(head) < 2:
                chunk = sock.recv(24 - len(head))
                if not chunk:
                    return "connection closed before an answer"
                head += chunk
    except socket.timeout:
        return "no answer"
    except OSError as exc:
        return (exc.strerror or str(exc)).lower()
    if head[:2] != b"\x81\x0a":
        return "the answer is not memcached's binary protocol"
    return None


def wait_for_servers(servers: abc.Sequence[Server], seconds: float, timeout: float,
                     clock: abc.Callable[[], float] = time.monotonic,
                     sleep: abc.Callable[[float], None] = time.sleep) -> None:
    """Return once every server has answered a NOOP; raise ServersNotReadyError naming the
    first one still silent after *seconds*. Each attempt lasts at most *timeout* seconds."""
    deadline = clock() + seconds
    waiting = list(servers)
    while True:
        problems = {}
        for server in waiting:
            left = max(deadline - clock(), 0.05)
            problem = noop_problem(server, min(timeout, left))
            if problem is not None:
                problems[server] = problem
        waiting = [server for server in waiting if server in problems]
        if not waiting:
            return
        if clock() >= deadline:
            first = waiting[0]
            more = f" (and {len(waiting) - 1} more)" if len(waiting) > 1 else ""
            raise ServersNotReadyError(f"--wait={seconds:g}: server {first} did not answer "
                                       f"in time: {problems[first]}{more}")
        sleep(min(RETRY_SECONDS, max(deadline - clock(), 0.0)))
