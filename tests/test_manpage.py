"""man/memccp.1 is a maintained source file: it must say what the parser and the manual say.

The page is not generated during the build (argparse-manpage writes other pages in each
Debian release), so these tests compare its meaning with build_parser() and
memccp_py.settings.manual: every option, option group and section is there, every help text and
paragraph of prose is there, and groff renders the page without a warning.
"""

import os
import re
import shutil
import subprocess

import pytest

from memccp_py.cli import build_parser
from memccp_py.settings.manual import DESCRIPTION, MAN_SECTIONS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGE = os.path.join(ROOT, "man", "memccp.1")
REQUIRED_SECTIONS = ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "SEE ALSO", "AUTHORS"]


def _source():
    with open(PAGE, encoding="utf-8") as page:
        return page.read()


def _plain(roff):
    """The words of roff source: escapes undone, font changes dropped, lines joined."""
    text = roff.replace("\\-", "-").replace("\\&", "").replace("\\e", "\\")
    text = re.sub(r"\\f[BIRP]", "", text)
    return " ".join(text.split())


def _normal(text):
    return " ".join(text.split())


def _body(roff):
    """The page without its request lines, as words."""
    return _plain("\n".join(line for line in roff.splitlines() if not line.startswith(".")))


def _headings(roff, request):
    found = []
    for line in roff.splitlines():
        if line.startswith(request + " "):
            found.append(_plain(line[len(request) + 1:]).strip('"'))
    return found


def test_every_option_is_documented_in_bold():
    """Each option string of the parser stands in bold as an option of its own."""
    roff = _source()
    for action in build_parser()._actions:
        for option in action.option_strings:
            escaped = option.replace("-", "\\-")
            assert "\\fB" + escaped + "\\fR" in roff, option


def test_every_help_text_is_in_the_page():
    """Each option's help, as --help expands it, follows the option in the page."""
    parser = build_parser()
    formatter = parser._get_formatter()
    body = _body(_source())
    for action in parser._actions:
        if action.dest == "help":
            continue
        assert _normal(formatter._expand_help(action)) in body, action.option_strings or action.dest


def test_every_option_group_is_a_subsection():
    """Each titled group of options is a .SS heading, in the parser's order."""
    titles = [group.title for group in build_parser()._action_groups
              if group.title not in ("positional arguments", "options") and group._group_actions]
    assert _headings(_source(), ".SS") == titles


def test_every_section_is_present():
    """The usual sections and every section of memccp_py.settings.manual are .SH headings."""
    headings = _headings(_source(), ".SH")
    wanted = REQUIRED_SECTIONS + [section["heading"].upper() for section in MAN_SECTIONS]
    for heading in wanted:
        assert heading in headings, heading


def test_name_and_description_follow_the_parser():
    roff = _source()
    parser = build_parser()
    assert re.search(r"^\.TH MEMCCP 1 ", roff, re.M)
    name = roff.split(".SH NAME\n", 1)[1].split("\n", 1)[0]
    assert _plain(name) == "memccp - " + parser.man_short_description
    assert _normal(DESCRIPTION) in _body(roff)


def test_every_paragraph_of_the_manual_is_in_the_page():
    body = _body(_source())
    for section in MAN_SECTIONS:
        for paragraph in section["content"].split("\n\n"):
            assert _normal(paragraph) in body, paragraph[:60]


def _render(*args):
    env = dict(os.environ, LC_ALL="C.UTF-8", MANWIDTH="80")
    return subprocess.run(["groff", "-man", "-ww", "-Tutf8", *args, PAGE], env=env,
                          capture_output=True, check=True)


@pytest.mark.skipif(shutil.which("groff") is None, reason="groff (groff-base) is not installed")
def test_groff_renders_the_page_without_warnings():
    result = _render("-z")
    assert result.stderr == b""


@pytest.mark.skipif(shutil.which("groff") is None, reason="groff (groff-base) is not installed")
def test_rendered_page_shows_the_escape_as_typed():
    """The reader sees the backslash of \\xNN (a roff escape gone wrong would drop it)."""
    text = _render().stdout.decode()
    text = re.sub(r".\x08", "", text)  # overstrikes of bold and underline
    assert "control bytes as \\xNN, so" in _normal(text)


def test_every_exit_status_is_documented():
    """Each status of ExitStatus is named in the manual's Exit status section, and no other."""
    from memccp_py.status import ExitStatus

    section = next(s["content"] for s in MAN_SECTIONS if s["heading"] == "Exit status")
    statuses = {value for name, value in vars(ExitStatus).items() if name.isupper()}
    assert {int(n) for n in re.findall(r"\b(\d+):", section)} == statuses
