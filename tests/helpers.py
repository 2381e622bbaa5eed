"""Small helpers shared by the tests."""

from typing import Tuple

from memccp_py.cli import main


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
