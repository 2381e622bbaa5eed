"""The --servers / MEMCACHED_SERVERS list, read as libmemcached reads it, so that memccat,
C memccp and any libmemcached program given the same string find the same servers:
``host[:port[:weight]]``, ``[v6][:port[:weight]]``, ``/unix/socket``, separated by commas."""

from __future__ import annotations

from collections import abc, namedtuple

from memccp_py.errors import UsageError

DEFAULT_PORT = 11211
MAX_WEIGHT = 0xFFFFFFFF  # libmemcached keeps a weight in 32 bits

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
    if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
        raise UsageError(f"bad server entry {entry!r}: {what} must be a number from {low} to {high}")
    return int(text)


def _digits(text: str) -> tuple[str, str]:
    """The leading decimal digits of *text* (after blanks and a plus sign, as strtoul
    reads), and the rest."""
    stripped = text.lstrip(" \t")
    if stripped[:1] == "+":
        stripped = stripped[1:]
    end = 0
    while end < len(stripped) and stripped[end] in "0123456789":
        end += 1
    return stripped[:end], stripped[end:]


def _address(host: str, entry: str) -> str | None:
    """The host name or address of *host* ([v6] unbracketed), None for a unix socket."""
    if host.startswith("/"):
        return None
    if host.startswith("["):
        inner = host[1:-1]
        if not host.endswith("]") or ":" not in inner or not set(inner) <= _IPV6_CHARS:
            raise UsageError(f"bad server entry {entry!r}: expected [IPv6]:port")
        return inner
    if not host or not set(host) <= _HOST_CHARS:
        raise UsageError(f"bad server entry {entry!r}: {host!r} is not a host name or address")
    return host


def parse_server(entry: str, warn: abc.Callable[[str], None] | None = None) -> Server:
    """Parse one server entry as libmemcached's memcached_servers_parse() reads it:
    ``host[:port[:weight]]``, ``host:port weight``, ``[v6][:port[:weight]]``,
    ``/socket[:port[:weight]]`` (a socket's port is ignored). What libmemcached would
    ignore after the weight is a usage error, or, where blanks separate it (``a:1 b:2``),
    a warning through *warn*. Anything else that makes no sense is a UsageError."""
    bracket = entry.find("[")
    close = entry.find("]", bracket + 1) if bracket >= 0 else -1
    colon = entry.find(":", close + 1) if close >= 0 else entry.find(":")
    host, rest = (entry, None) if colon < 0 else (entry[:colon], entry[colon + 1:])
    port_text, weight_text, ignored = "", "", []
    if rest is not None:  # as strtoul reads the port, then the weight after a blank or a colon
        port_text, after = _digits(rest)
        sep = rest.find(" ") if " " in rest else rest.find(":")
        if sep >= 0:
            ignored.append(after[:len(after) - (len(rest) - sep)])  # between port and separator
            weight_text, tail = _digits(rest[sep + 1:])
            ignored.append(tail)
        else:
            ignored.append(after)
    ignored = " ".join(i.strip() for i in ignored if i.strip())
    address = _address(host, entry)
    if rest is not None and not port_text and rest.strip():
        raise UsageError(f"bad server entry {entry!r}: port must be a number from 1 to 65535")
    if ignored:
        if not any(c.isspace() for c in entry):
            raise UsageError(f"bad server entry {entry!r}: expected host:port[:weight]")
        read = host + (f":{port_text}" if port_text else "") + (f":{weight_text}" if weight_text else "")
        if warn is not None:
            warn(f"server entry {entry!r} is read as {read!r}, as libmemcached (memccat, C memccp) "
                 f"reads it: {ignored!r} is ignored (separate servers with commas)")
    weight = _number(weight_text, "weight", entry, 0, MAX_WEIGHT) or 1 if weight_text else 1
    if address is None:
        return Server(None, 0, weight, host, host)
    port = _number(port_text, "port", entry, 1, 65535) if port_text else DEFAULT_PORT
    return Server(address, port, weight, None, f"{host}:{port_text}" if port_text else host)


def parse_servers(spec: str, warn: abc.Callable[[str], None] | None = None) -> list[Server]:
    """Parse a whole server list as libmemcached does: entries separated by commas (one
    blank after a comma is skipped); raise UsageError for an empty or bad one."""
    entries = spec.split(",")
    entries = [entries[0]] + [e[1:] if e[:1].isspace() else e for e in entries[1:]]
    if len(entries) > 1 and not entries[-1].strip():
        entries.pop()  # "a,b," ends there, as in libmemcached
    if not any(e.strip() for e in entries):
        raise UsageError("no servers given: use --servers=HOST[:PORT] or set MEMCACHED_SERVERS")
    return [parse_server(e, warn) for e in entries]
