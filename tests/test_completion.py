"""Bash completion generated from the parser (tools/bash-completion, python3-shtab):
it loads without a message and completes options, choices and file names."""

import os
import subprocess

import pytest

from memccp_py.cli import build_parser

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def script(tmp_path_factory):
    """The generated completion script, as the package build writes it."""
    result = subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "tools", "bash-completion")],
                            env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, timeout=300)
    assert (result.returncode, result.stderr) == (0, b"")
    path = tmp_path_factory.mktemp("completion") / "memccp"
    path.write_bytes(result.stdout)
    return path


def complete(script, *words: str, cwd=None) -> tuple:
    """(COMPREPLY lines, stderr) after sourcing *script* and completing the last of *words*."""
    words_array = " ".join("'" + w.replace("'", "'\\''") + "'" for w in ("memccp",) + words)
    program = (f". '{script}' && COMP_WORDS=({words_array}) && COMP_CWORD={len(words)} && "
               "_shtab_memccp && printf '%s\\n' \"${COMPREPLY[@]}\"")
    result = subprocess.run(["/bin/bash", "--norc", "--noprofile", "-c", program], cwd=cwd,
                            capture_output=True, text=True, timeout=300,
                            env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"})
    assert result.returncode == 0, result.stderr
    return sorted(line for line in result.stdout.splitlines() if line), result.stderr


def test_sourcing_registers_memccp(script):
    """Sourcing the script prints nothing and registers a completion for memccp."""
    result = subprocess.run(["/bin/bash", "--norc", "--noprofile", "-c", f". '{script}' && complete -p memccp"],
                            capture_output=True, text=True, timeout=300)
    assert (result.returncode, result.stdout, result.stderr) == (
        0, "complete -o filenames -F _shtab_memccp memccp\n", "")


def test_every_option_of_the_parser(script):
    """Completing "--" offers exactly the parser's long options (it cannot drift from --help)."""
    expected = sorted(option for action in build_parser()._actions
                      for option in action.option_strings if option.startswith("--"))
    assert complete(script, "--") == (expected, "")


@pytest.mark.parametrize("words, offered", [
    (("--wa",), ["--wait"]),
    (("--distribution", "ket"), ["ketama", "ketama-weighted"]),
    (("-+", "-/", "--escape", ""), ["nginx", "none"]),
    (("-v", "--index", "index.html", "--suf"), ["--suffix"]),
])
def test_options_and_choices(script, words, offered):
    """Options complete by prefix, choices after their option, also after -+ and -/."""
    assert complete(script, *words) == (offered, "")


def test_file_and_directory_names(script, tmp_path):
    """FILE and --files-from complete file names, --docroot and --allow-links-into
    directory names only."""
    (tmp_path / "site").mkdir()
    (tmp_path / "site.txt").write_text("x")
    assert complete(script, "-v", "si", cwd=tmp_path) == (["site", "site.txt"], "")
    assert complete(script, "--files-from", "si", cwd=tmp_path) == (["site", "site.txt"], "")
    assert complete(script, "--docroot", "si", cwd=tmp_path) == (["site"], "")
    assert complete(script, "--allow-links-into", "si", cwd=tmp_path) == (["site"], "")
