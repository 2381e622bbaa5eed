"""Small helpers shared by the tests."""

from typing import Tuple

from memccp_py.cli import main


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
