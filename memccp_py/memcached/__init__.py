"""Speaking to memcached: one connection per server, in the binary, text or meta protocol."""

from memccp_py.memcached.connection import PROTOCOLS, Connection

__all__ = ["PROTOCOLS", "Connection"]
