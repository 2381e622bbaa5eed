"""Small helpers shared by the tests."""

import os
from typing import Tuple

from memccp_py.cli import main
from memccp_py.cluster import Cluster
from memccp_py.servers import parse_servers


def c_memccp() -> str:
    """Debian's C memccp: diverted beside memccp-py, else /usr/bin/memccp if it is C.

    By path, not by PATH: during a package build PATH may lead to the memccp being built."""
    for path in ("/usr/bin/memccp.libmemcached-tools", "/usr/bin/memccp"):
        try:
            with open(path, "rb") as handle:
                if handle.read(4) == b"\x7fELF":
                    return path
        except OSError:
            pass
    return ""


def run(capsys, *argv: str) -> Tuple[int, str, str]:
    """Run memccp in-process; return (exit status, stdout, stderr)."""
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


class About:
    """A TTL read back: equal to any value from *seconds* - 2 to *seconds* (a second may
    pass between storing and reading)."""

    def __init__(self, seconds: int) -> None:
        self.seconds = seconds

    def __eq__(self, other: object) -> bool:
        return isinstance(other, int) and self.seconds - 2 <= other <= self.seconds

    def __repr__(self) -> str:
        return f"About({self.seconds})"


def make_files(tmp_path, count):
    """*count* small files f00.txt, f01.txt... in *tmp_path*; their paths."""
    paths = []
    for i in range(count):
        path = tmp_path / f"f{i:02}.txt"
        path.write_bytes(b"content of file %d" % i)
        paths.append(str(path))
    return paths


def placed_on(servers: str, paths, index):
    """The paths whose key (base name) the cluster places on server *index*."""
    cluster = Cluster(parse_servers(servers))
    target = cluster.connections[index]
    return [p for p in paths if cluster.route(os.fsencode(os.path.basename(p)))[0] is target]
