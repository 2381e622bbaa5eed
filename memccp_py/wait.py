"""--wait: before copying, wait until every server answers in its protocol.

A memcached that is (re)starting refuses connections for a moment; a preload run
started beside it (the memccp-preload@ unit) waits here instead of failing every file.
Each attempt is a connection as the copy makes it (with --protocol=auto the dialect is
chosen then and kept), closed again so the copy starts on a fresh one.
"""

from __future__ import annotations

import time
from collections import abc

from memccp_py.errors import MemccpError, ServerError

#: Pause between two rounds of asking the servers that did not answer yet.
RETRY_SECONDS = 0.1


class ServersNotReadyError(MemccpError):
    """Some server did not answer within --wait seconds (exit 1)."""


def noop_problem(conn, timeout: float) -> str | None:
    """Why *conn*'s server does not answer within *timeout* seconds, or None when it does."""
    usual, conn.timeout = conn.timeout, timeout
    try:
        conn.open()
    except ServerError as exc:
        return str(exc).split(": ", 1)[-1]
    finally:
        conn.timeout = usual
        conn.disconnect()
    return None


def wait_for_servers(servers: abc.Sequence, seconds: float, timeout: float,
                     clock: abc.Callable[[], float] = time.monotonic,
                     sleep: abc.Callable[[float], None] = time.sleep) -> None:
    """Return once every connection of *servers* has connected; raise ServersNotReadyError
    naming the first one still silent after *seconds*. Each attempt lasts at most *timeout*
    seconds."""
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
            raise ServersNotReadyError(f"--wait={seconds:g}: server {first.spec} did not answer "
                                       f"in time: {problems[first]}{more}")
        sleep(min(RETRY_SECONDS, max(deadline - clock(), 0.0)))
