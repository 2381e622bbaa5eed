"""man/memccp.1 is generated from the parser and checked in: it must not be stale."""

import importlib.util
import os
import re
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.skipif(importlib.util.find_spec("build_manpages") is None,
                    reason="argparse-manpage (python3-argparse-manpage) is not installed")
def test_man_page_is_current(tmp_path):
    """Regenerating man/memccp.1 from build_parser() gives the checked-in file byte for byte."""
    work = tmp_path / "src"
    shutil.copytree(ROOT, work, ignore=shutil.ignore_patterns(".git", "out", "build", "debian",
                                                              "*.egg-info", ".pybuild", "deb_dist"))
    (work / "man" / "memccp.1").unlink()
    env = dict(os.environ, COLUMNS="80", PYTHONPATH=str(work))
    subprocess.run([sys.executable, "setup.py", "-q", "build_manpages"], cwd=work, env=env,
                   check=True, capture_output=True)
    with open(os.path.join(ROOT, "man", "memccp.1"), "rb") as checked_in:
        assert (work / "man" / "memccp.1").read_bytes() == checked_in.read(), \
            "man/memccp.1 is stale: run `make man` and commit it"


def test_man_page_documents_every_option():
    """Every option of the parser appears in the checked-in man page (-h only in the synopsis)."""
    from memccp_py.cli import build_parser

    with open(os.path.join(ROOT, "man", "memccp.1"), encoding="utf-8") as page:
        text = page.read().replace("\\-", "-")
    for action in build_parser()._actions:
        for option in action.option_strings if action.dest != "help" else ["-h"]:
            # as an option of its own, in bold: -F is not found inside --flag
            assert re.search(r"(\\fB|\[)" + re.escape(option) + r"(\\fR|[] =,])", text), option


def test_every_exit_status_is_documented():
    """Each status of ExitStatus is named in the manual's Exit status section, and no other."""
    import re

    from memccp_py.manual import MAN_SECTIONS
    from memccp_py.status import ExitStatus

    section = next(s["content"] for s in MAN_SECTIONS if s["heading"] == "Exit status")
    statuses = {value for name, value in vars(ExitStatus).items() if name.isupper()}
    assert {int(n) for n in re.findall(r"\b(\d+):", section)} == statuses
