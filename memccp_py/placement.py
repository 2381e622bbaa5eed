"""Which server holds a key (filled in by the placement module work)."""

from typing import Callable, List, Sequence

from memccp_py.hashing import hash_function
from memccp_py.servers import Server

DISTRIBUTIONS = ("modula", "ketama", "nginx-consistent", "nginx-hash", "all")


def make_placement(distribution: str, hash_name: str,
                   servers: Sequence[Server]) -> Callable[[bytes], List[int]]:
    """A function mapping a key to the indexes of the servers that must hold it."""
    count = len(servers)
    if distribution == "all":
        every = list(range(count))
        return lambda key: every
    if count == 1:
        return lambda key: [0]
    if distribution == "modula":
        digest = hash_function(hash_name)
        return lambda key: [digest(key) % count]
    raise ValueError(f"unknown distribution {distribution!r}")
