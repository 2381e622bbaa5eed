"""Server list grammar, table-driven."""

import re

import pytest

from memccp_py.errors import UsageError
from memccp_py.placement.servers import Server, parse_servers


@pytest.mark.parametrize("spec, expected", [
    ("localhost", [Server("localhost", 11211, 1, None, "localhost")]),
    ("127.0.0.1:22122", [Server("127.0.0.1", 22122, 1, None, "127.0.0.1:22122")]),
    ("127.0.0.1:22122:3", [Server("127.0.0.1", 22122, 3, None, "127.0.0.1:22122")]),
    ("[::1]:22122", [Server("::1", 22122, 1, None, "[::1]:22122")]),
    ("[::1]", [Server("::1", 11211, 1, None, "[::1]")]),
    ("[::1]:22122:2", [Server("::1", 22122, 2, None, "[::1]:22122")]),
    ("/run/memcached/memcached.sock", [Server(None, 0, 1, "/run/memcached/memcached.sock",
                                              "/run/memcached/memcached.sock")]),
    # libmemcached reads a socket's ":N" as a port (and ignores it); the weight comes after it
    ("/tmp/m.sock:4", [Server(None, 0, 1, "/tmp/m.sock", "/tmp/m.sock")]),
    ("/tmp/m.sock:0:4", [Server(None, 0, 4, "/tmp/m.sock", "/tmp/m.sock")]),
    ("a:1,b:2, c:3", [Server("a", 1, 1, None, "a:1"), Server("b", 2, 1, None, "b:2"),
                      Server("c", 3, 1, None, "c:3")]),
    ("a:1,b:2,", [Server("a", 1, 1, None, "a:1"), Server("b", 2, 1, None, "b:2")]),
    ("h:11211 3", [Server("h", 11211, 3, None, "h:11211")]),  # a blank before the weight
    ("h:11211:0", [Server("h", 11211, 1, None, "h:11211")]),  # weight 0: the default
    ("h:+11211:+2", [Server("h", 11211, 2, None, "h:11211")]),  # strtoul takes a plus sign
])
def test_parse_servers(spec, expected):
    """Every documented form parses to host, port, weight and the name as written."""
    warnings = []
    assert parse_servers(spec, warnings.append) == expected
    assert warnings == []


@pytest.mark.parametrize("spec, expected, ignored", [
    ("h:11211 h:11212 h:11213", [Server("h", 11211, 1, None, "h:11211")], "'h:11212 h:11213'"),
    ("a:1 b:2,c:3", [Server("a", 1, 1, None, "a:1"), Server("c", 3, 1, None, "c:3")], "'b:2'"),
    ("h:11211 2 h:2", [Server("h", 11211, 2, None, "h:11211")], "'h:2'"),
])
def test_blank_separated_servers_read_as_libmemcached(spec, expected, ignored):
    """Servers separated by blanks are read as libmemcached reads them (one entry per comma),
    with one warning saying what is ignored."""
    warnings = []
    assert parse_servers(spec, warnings.append) == expected
    assert len(warnings) == 1 and f"{ignored} is ignored (separate servers with commas)" in warnings[0]


@pytest.mark.parametrize("spec, message", [
    ("", "no servers given"),
    (" , ", "no servers given"),
    ("host:port", "port must be a number"),
    ("host:0", "port must be a number"),
    ("host:70000", "port must be a number"),
    ("host:11211:4294967296", "weight must be a number"),
    ("a,,b", "'' is not a host name"),
    ("host:11211:x", "expected host:port[:weight]"),
    ("host:1:2:3", "expected host:port[:weight]"),
    ("[::1", "expected [IPv6]:port"),
    ("[::1]x", "expected [IPv6]:port"),
    ("ho st!", "is not a host name"),
    ("::1:11211", "is not a host name"),
])
def test_bad_server_entries(spec, message):
    """Bad entries are a UsageError that says what is wrong."""
    with pytest.raises(UsageError, match=re.escape(message)):
        parse_servers(spec)
