"""Small helpers shared by the tests."""

from typing import Tuple

from memccp_py.cli import main


def run(capsys, *argv: str) -> Tuple[int, str, str]:
    """Run memccp in-process; return (exit status, stdout, stderr)."""
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err
