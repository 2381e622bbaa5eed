"""The --servers / MEMCACHED_SERVERS list: ``host[:port[:weight]]``, ``[v6][:port[:weight]]``,
``/unix/socket[:weight]``, separated by commas (or spaces)."""

from __future__ import annotations

from collections import namedtuple

from memccp_py.errors import UsageError

DEFAULT_PORT = 11211

_HOST_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
_IPV6_CHARS = frozenset("0123456789ABCDEFabcdefghijklmnopqrstuvwxyz:.%")  # letters: a %zone


class Server(namedtuple("Server", "host port weight path name")):
    """One memcached server as the user wrote it.

    ``host``: name or address (None for a unix socket); ``port``: int; ``weight``: int;
    ``path``: the unix socket path, else None; ``name``: "host:port" as written, without
    the weight ("/path" for sockets).
    """

    __slots__ = ()

    def __str__(self) -> str:
        return self.name


def _number(text: str, what: str, entry: str, low: int, high: int) -> int:
    if not text.isdigit() or not low <= int(text) <= high:
        raise UsageError(f"bad server entry {entry!r}: {what} must be a number from {low} to {high}")
    return int(text)


def parse_server(entry: str) -> Server:
    """Parse one server entry; raise UsageError when it makes no sense."""
    if entry.startswith("/"):
        path, sep, weight = entry.rpartition(":")
        if not sep or not weight.isdigit():
            path, weight = entry, "1"
        return Server(None, 0, _number(weight, "weight", entry, 1, 1000), path, path)
    if entry.startswith("["):
        host, sep, rest = entry[1:].partition("]")
        if not sep or not host or ":" not in host or not set(host) <= _IPV6_CHARS:
            raise UsageError(f"bad server entry {entry!r}: expected [IPv6]:port")
        if rest and not rest.startswith(":"):
            raise UsageError(f"bad server entry {entry!r}: expected [IPv6]:port")
        parts = rest[1:].split(":") if rest else []
        shown = f"[{host}]"
    else:
        host, *parts = entry.split(":")
        if not host or not set(host) <= _HOST_CHARS:
            raise UsageError(f"bad server entry {entry!r}: {host!r} is not a host name or address")
        shown = host
    if len(parts) > 2:
        raise UsageError(f"bad server entry {entry!r}: expected host:port[:weight]")
    port = _number(parts[0], "port", entry, 1, 65535) if parts and parts[0] else DEFAULT_PORT
    weight = _number(parts[1], "weight", entry, 1, 1000) if len(parts) > 1 else 1
    name = f"{shown}:{parts[0]}" if parts and parts[0] else shown
    return Server(host, port, weight, None, name)


def parse_servers(spec: str) -> list[Server]:
    """Parse a whole server list; raise UsageError for an empty or bad one."""
    entries = spec.replace(",", " ").split()
    if not entries:
        raise UsageError("no servers given: use --servers=HOST[:PORT] or set MEMCACHED_SERVERS")
    return [parse_server(e) for e in entries]
