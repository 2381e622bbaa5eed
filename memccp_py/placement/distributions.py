"""Which server a key belongs on, as the reader will compute it.

* ``modula``: libmemcached's default and what C memccp does: ``hash(key) % n``
  over the servers in the order given (any --hash).
* ``ketama``: libmemcached's MEMCACHED_DISTRIBUTION_CONSISTENT_KETAMA: 100
  points a server hashed with --hash, or, once any weight is above 1, the
  weighted MD5 continuum (160 points a server shared by weight).
* ``ketama-weighted``: libmemcached's KETAMA_WEIGHTED behaviour (classic
  libketama): the weighted MD5 continuum, keys hashed with MD5.
* ``nginx-consistent``: nginx's ``hash $memcached_key consistent;``.
* ``nginx-hash``: nginx's plain ``hash $memcached_key;``.
* ``all``: every server (for round-robin upstreams).

nginx hashes ``$memcached_key`` before escaping it, so the nginx placements
are given the unescaped name.
"""

import bisect
import hashlib
import math
import struct
import zlib
from typing import Callable, List, Sequence, Tuple

from memccp_py.choices import DISTRIBUTIONS
from memccp_py.placement.hashing import crc, hash_function, md5
from memccp_py.placement.servers import Server

Placement = Callable[[bytes], List[int]]


def _f32(x: float) -> float:
    """Round to C float, as libmemcached computes the weighted point counts."""
    return struct.unpack("f", struct.pack("f", x))[0]


def _ring_lookup(points: List[Tuple[int, int]]) -> Callable[[int], List[int]]:
    """Lookup in a sorted (hash, server) ring: first point >= hash, wrapping."""
    hashes = [h for h, _ in points]
    owners = [s for _, s in points]

    def lookup(value: int) -> List[int]:
        i = bisect.bisect_left(hashes, value)
        return [owners[i if i < len(owners) else 0]]
    return lookup


def _ketama_label(server: Server, i: int) -> bytes:
    """libmemcached's point label: "host-i" on port 11211, else "host:port-i" (sockets: port 0)."""
    if server.path is not None:
        return f"{server.path}:0-{i}".encode()
    host = f"[{server.host}]" if ":" in server.host else server.host  # as libmemcached keeps it
    if server.port == 11211:
        return f"{host}-{i}".encode()
    return f"{host}:{server.port}-{i}".encode()


def ketama_points(servers: Sequence[Server], weighted: bool,
                  digest: Callable[[bytes], int]) -> List[Tuple[int, int]]:
    """libmemcached's continuum: sorted (point, server index) pairs."""
    points = []
    total = sum(s.weight for s in servers)
    for index, server in enumerate(servers):
        if not weighted:
            points += [(digest(_ketama_label(server, i)), index) for i in range(100)]
            continue
        share = _f32(_f32(_f32(_f32(server.weight / total) * 160) / 4) * len(servers))
        for i in range(int(math.floor(share + 1e-10))):
            words = struct.unpack("<4I", hashlib.md5(_ketama_label(server, i)).digest())
            points += [(word, index) for word in words]
    points.sort()
    return points


def _nginx_host_port(name: str) -> Tuple[bytes, bytes]:
    """nginx splits "host:port" at the colon before trailing digits; no port: empty."""
    head, sep, tail = name.rpartition(":")
    if sep and tail.isdigit():
        return head.encode(), tail.encode()
    return name.encode(), b""


def nginx_points(servers: Sequence[Server]) -> List[Tuple[int, int]]:
    """nginx's consistent-hash ring: 160 * weight CRC-32 points a server, sorted, unique."""
    points = []
    for index, server in enumerate(servers):
        host, port = _nginx_host_port(server.name)
        base = host + b"\0" + port
        prev = 0
        for _ in range(160 * server.weight):
            prev = zlib.crc32(base + struct.pack("<I", prev))
            points.append((prev, index))
    points.sort(key=lambda p: p[0])
    unique = [p for i, p in enumerate(points) if i == 0 or points[i - 1][0] != p[0]]
    return unique


def make_placement(distribution: str, hash_name: str, servers: Sequence[Server]) -> Placement:
    """A function mapping a key to the indexes of the servers that must hold it."""
    count = len(servers)
    if distribution == "all":
        every = list(range(count))
        return lambda key: every
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"unknown distribution {distribution!r}")
    if count == 1:
        return lambda key: [0]
    if distribution == "modula":
        digest = hash_function(hash_name)
        return lambda key: [digest(key) % count]
    if distribution in ("ketama", "ketama-weighted"):
        weighted = distribution == "ketama-weighted" or any(s.weight > 1 for s in servers)
        digest = md5 if distribution == "ketama-weighted" else hash_function(hash_name)
        lookup = _ring_lookup(ketama_points(servers, weighted, digest))
        return lambda key: lookup(digest(key))
    if distribution == "nginx-consistent":
        lookup = _ring_lookup(nginx_points(servers))
        return lambda key: lookup(zlib.crc32(key))
    weights = [s.weight for s in servers]  # nginx-hash
    total = sum(weights)

    def nginx_hash(key: bytes) -> List[int]:
        w = crc(key) % total
        for index, weight in enumerate(weights):
            if w < weight:
                return [index]
            w -= weight
        return [count - 1]
    return nginx_hash
