"""Several servers: one bmemcached connection each, and the placement that
picks, for every key, the server(s) a reader will ask."""

from __future__ import annotations

from collections import abc

from memccp_py.connection import Connection
from memccp_py.names import NGINX_DISTRIBUTIONS
from memccp_py.servers import Server


class Cluster:
    """Routes each key to its server's connection; connects lazily."""

    def __init__(self, servers: abc.Sequence[Server], *, distribution: str = "modula",
                 hash_name: str = "default", timeout: float | None = None,
                 username: str | None = None, password: str | None = None,
                 connection_factory: abc.Callable[..., Connection] = Connection) -> None:
        self.servers = list(servers)
        self.connections = [connection_factory(s, timeout=timeout, username=username,
                                               password=password) for s in self.servers]
        if len(self.servers) == 1:
            self._place = lambda key: [0]
        else:  # hashing is only needed, and imported, for several servers
            from memccp_py.placement import make_placement

            self._place = make_placement(distribution, hash_name, self.servers)
        self._by_name = distribution in NGINX_DISTRIBUTIONS

    def route(self, key: bytes, name: bytes | None = None) -> list[Connection]:
        """The connections that must hold *key* (one, or all for --distribution=all).

        *name* is the key before --escape=nginx; nginx hashes that one."""
        chosen = name if self._by_name and name is not None else key
        return [self.connections[i] for i in self._place(chosen)]

    def close(self) -> None:
        """Close every open connection."""
        for conn in self.connections:
            conn.disconnect()
