"""Several servers: one connection each, the placement that picks,
for every key, the server(s) a reader will ask, and which servers are down.

A server that fails is left alone for ``retry_timeout`` seconds (libmemcached's
retry timeout): stores meant for it fail at once with the reason it failed,
then the next store tries it again, so a restarted server is used again.
"""

from __future__ import annotations

import time
from collections import abc

from memccp_py.choices import DEFAULT_RETRY_TIMEOUT, NGINX_DISTRIBUTIONS
from memccp_py.errors import CopyError, ServerError
from memccp_py.memcached import Connection
from memccp_py.placement.servers import Server
from memccp_py.records import Item


class Cluster:
    """Routes each key to its server's connection; connects lazily; keeps failed servers aside."""

    def __init__(self, servers: abc.Sequence[Server], *, distribution: str = "modula",
                 hash_name: str = "default", timeout: float | None = None,
                 username: str | None = None, password: str | None = None,
                 retry_timeout: float = DEFAULT_RETRY_TIMEOUT, protocol: str = "auto",
                 note: abc.Callable[[str], None] | None = None,
                 clock: abc.Callable[[], float] = time.monotonic) -> None:
        self.servers = list(servers)
        self.connections = [Connection(s, timeout=timeout, username=username, password=password,
                                       protocol=protocol, note=note) for s in self.servers]
        if len(self.servers) == 1:
            self._place = None
            self._only = [self.connections[0]]  # route()'s answer for every key
        else:  # hashing is only needed, and imported, for several servers
            from memccp_py.placement.distributions import make_placement

            self._place = make_placement(distribution, hash_name, self.servers)
        self._by_name = distribution in NGINX_DISTRIBUTIONS
        self.retry_timeout = retry_timeout
        self._clock = clock
        #: connection -> (the fault, when it may be tried again)
        self._down: dict[Connection, tuple[ServerError, float]] = {}

    def route(self, key: bytes, name: bytes | None = None) -> list[Connection]:
        """The connections that must hold *key* (one, or all for --distribution=all).

        *name* is the key before --escape=nginx; nginx hashes that one."""
        if self._place is None:
            return self._only
        chosen = name if self._by_name and name is not None else key
        return [self.connections[i] for i in self._place(chosen)]

    def _call(self, conn: Connection, method: abc.Callable, *args):
        """*method*(*args*) unless *conn* is resting after a fault; a fault starts its rest."""
        down = self._down.get(conn)
        if down is not None and self._clock() < down[1]:
            raise down[0]
        try:
            result = method(*args)
        except ServerError as exc:
            self._down[conn] = (exc, self._clock() + self.retry_timeout)
            raise
        self._down.pop(conn, None)
        return result

    def store(self, conn: Connection, op: str, items: abc.Sequence[Item],
              exptime: int, last: bool = False) -> list[tuple[Item, CopyError]]:
        """Store *items* on *conn*; return each item not stored with why (a server fault
        fails them all with that fault). *last*: the run's last store, which asks for the
        eviction counter in the same round trip."""
        try:
            return self._call(conn, conn.store_many, op, items, exptime, last)
        except ServerError as exc:
            return [(item, exc) for item in items]

    def item_limit(self, connections: abc.Sequence[Connection]) -> int | None:
        """The largest item every one of *connections* stores (memcached -I), None if
        unknown (a server that fails now is left to fail the store itself)."""
        limits = []
        for conn in connections:
            try:
                limits.append(self._call(conn, conn.item_size_max))
            except ServerError:
                return None
        known = [limit for limit in limits if limit]
        return min(known) if known else None

    def evicted(self) -> list[tuple[Server, int]]:
        """(server, items evicted since it was connected) for each server that evicted any."""
        found = []
        for conn in self.connections:
            try:
                evicted = self._call(conn, conn.evicted_since_connect)
            except ServerError:
                continue
            if evicted is not None and evicted > 0:
                found.append((conn.spec, evicted))
        return found

    def read_back(self, conn: Connection,
                  expected: abc.Mapping[bytes, tuple[int, int, bytes]]) -> dict[bytes, str]:
        """key -> what is wrong, for the items of *expected* that *conn* does not hold as
        stored; ServerError if the server cannot say."""
        return self._call(conn, conn.read_back, expected)

    def close(self) -> None:
        """Close every open connection."""
        for conn in self.connections:
            conn.disconnect()
