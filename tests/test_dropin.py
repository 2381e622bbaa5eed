"""Command lines written for C memccp work unchanged: options between files, -, key mode
precedence, C's long option abbreviations, libmemcached's server strings, -q."""

import io
import os
import shutil
import subprocess
import sys

import pytest

from conftest import item
from helpers import About, run
from memccp_py.cli import build_parser
from memccp_py.settings.abbreviations import expand, parse



@pytest.fixture
def tree(tmp_path, monkeypatch):
    """cwd with a.txt, b.txt and sub/b.gif."""
    (tmp_path / "sub").mkdir()
    for name, data in (("a.txt", b"A"), ("b.txt", b"B"), ("sub/b.gif", b"GIF")):
        (tmp_path / name).write_bytes(data)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_options_between_files_apply_to_every_file(memcached, tree, capsys):
    """`memccp a.txt -s S -F 7 b.txt`: both files stored, both with flags 7 (memcp 1.0.x)."""
    assert run(capsys, "a.txt", "-s", memcached.address, "-F", "7", "b.txt") == (0, "", "")
    assert item(memcached, b"a.txt") == (7, b"A", -1)
    assert item(memcached, b"b.txt") == (7, b"B", -1)


def with_stdin(data: bytes):
    """A stand-in for sys.stdin holding *data*."""
    return io.TextIOWrapper(io.BytesIO(data))


@pytest.mark.parametrize("extra, key", [([], b"-"), (["--key=from-stdin"], b"from-stdin"),
                                        (["-B"], b"-")])
def test_dash_reads_standard_input(memcached, tree, capsys, monkeypatch, extra, key):
    """`-` as FILE stores standard input under the key - (or --key), byte for byte."""
    data = bytes(range(256)) * 40
    monkeypatch.setattr(sys, "stdin", with_stdin(data))
    assert run(capsys, "-s", memcached.address, *extra, "-e", "50", "-") == (0, "", "")
    assert item(memcached, key) == (0, data, About(50))


def test_dash_twice_is_a_usage_error(memcached, tree, capsys, monkeypatch):
    """Standard input can be read once: `- --files-from=-` is a usage error, nothing stored."""
    monkeypatch.setattr(sys, "stdin", with_stdin(b"a.txt\n"))
    code, out, err = run(capsys, "-s", memcached.address, "--files-from=-", "-")
    assert (code, out) == (2, "")
    assert err == "memccp: standard input (-) can be read once: as one FILE or one --files-from\n"
    assert item(memcached, b"a.txt") is None and item(memcached, b"-") is None


@pytest.mark.parametrize("options, key", [
    (["-+", "-."], b"sub/b.gif"), (["-.", "-+"], b"sub/b.gif"),
    (["-/", "-+"], "ABS"), (["-+", "-/"], "ABS"), (["-/", "-."], "ABS"), (["-.", "-/"], "ABS"),
    (["-."], b"b.gif"), ([], b"b.gif"), (["--relative"], b"sub/b.gif"),
    (["--slash-basename"], b"/b.gif"), (["--slash-basename", "-+"], b"sub/b.gif"),
])
def test_key_mode_precedence(memcached, tree, capsys, options, key):
    """--absolute beats --relative beats --basename, whatever their order (as C memccp)."""
    key = os.fsencode(tree / "sub" / "b.gif") if key == "ABS" else key
    assert run(capsys, "-s", memcached.address, *options, "sub/b.gif") == (0, "", "")
    assert item(memcached, key) == (0, b"GIF", -1)
    others = {b"sub/b.gif", b"b.gif", b"/b.gif", os.fsencode(tree / "sub" / "b.gif")} - {key}
    assert [k for k in others if item(memcached, k)] == []


@pytest.mark.parametrize("option, expect", [
    ("--fla=5", ("flags", 5)), ("--f=5", ("flags", 5)), ("--flags=5", ("flags", 5)),
    ("--e=60", ("ttl", 60)), ("--exp=60", ("ttl", 60)),
    ("--ba", ("key", b"b.gif")), ("--base", ("key", b"b.gif")), ("--rel", ("key", b"sub/b.gif")),
    ("--d", ("stderr", "memccp: debug: servers")), ("--t", None), ("--n", None), ("--bi", None),
    ("--bu", None), ("--p=x", ("stderr", "a password without --username is ignored")),
    ("--pass=x", ("stderr", "a password without --username is ignored")),
    ("--docr=.", ("key", b"/sub/b.gif")), ("--dis=all", None), ("--unique", None),
])
def test_c_long_option_abbreviations(memcached, tree, capsys, option, expect):
    """Every abbreviation C memccp accepts means what it means in C; memccp-py's own
    options keep their unique prefixes."""
    code, out, err = run(capsys, "-s", memcached.address, option, "sub/b.gif")
    assert (code, out) == (0, "")
    what, value = expect or ("key", b"b.gif")
    key = value if what == "key" else b"b.gif"
    assert item(memcached, key) == (value if what == "flags" else 0, b"GIF",
                                      About(value) if what == "ttl" else -1)
    if what == "stderr":
        assert value in err
    else:
        assert err == ""


@pytest.mark.parametrize("option, possibilities", [
    ("--s", "--servers --set"), ("--ver", "--verbose --version"), ("--re", "--relative --replace"),
])
def test_ambiguous_abbreviations(memcached, tree, capsys, option, possibilities):
    """A prefix of several C options is ambiguous, as in C: exit 2, nothing stored."""
    code, out, err = run(capsys, "-s", memcached.address, option, "sub/b.gif")
    assert (code, out) == (2, "")
    assert err.endswith(f"memccp: error: option '{option}' is ambiguous; possibilities: "
                        f"{possibilities}\n")
    assert item(memcached, b"b.gif") is None


def test_option_values_starting_with_a_dash(memcached, tree, capsys):
    """A value that starts with - is a value, as getopt reads it: --key -k, -e -1 is refused."""
    assert run(capsys, "-s", memcached.address, "--key", "-k", "a.txt") == (0, "", "")
    assert item(memcached, b"-k") == (0, b"A", -1)


@pytest.mark.skipif(not shutil.which("memccat"), reason="Debian's memccat is not installed")
def test_blank_separated_servers_as_libmemcached(memcached_cluster, tree, capsys, monkeypatch):
    """`-s "h:1 h:2 h:3"` is one server for libmemcached: memccp-py stores there too, says
    what is ignored in one warning, and memccat given the same string finds every key."""
    spec = " ".join(s.address for s in memcached_cluster)
    code, out, err = run(capsys, "-s", spec, "a.txt", "b.txt", "sub/b.gif")
    assert (code, out) == (0, "")
    # libmemcached reads the port, then, after the first blank, a weight: 127 (of 127.0.0.1)
    rest = " ".join(s.address for s in memcached_cluster[1:])[3:]
    assert err == (f"memccp: warning: server entry '{spec}' is read as "
                   f"'{memcached_cluster[0].address}:127', as libmemcached (memccat, C memccp) "
                   f"reads it: '{rest}' is ignored (separate servers with commas)\n")
    for key, data in ((b"a.txt", b"A"), (b"b.txt", b"B"), (b"b.gif", b"GIF")):
        assert item(memcached_cluster[0], key) == (0, data, -1)
        got = subprocess.run(["memccat", "-s", spec, key.decode()], capture_output=True)
        assert got.stdout == data + b"\n", key  # memccat ends each value with a newline
    monkeypatch.setenv("MEMCACHED_SERVERS", spec)
    code, out, err = run(capsys, "-q", "a.txt")
    assert (code, out, err) == (0, "", "")


def test_double_dash_ends_the_options(memcached, tree, capsys):
    """After --, every word is a FILE, as in C: files named like options (--files-from=...,
    -v, -F 9) are copied as files, never read as options."""
    (tree / "--files-from=list.txt").write_bytes(b"looks like an option")
    (tree / "list.txt").write_bytes(b"/etc/passwd\n")
    (tree / "-v").write_bytes(b"dash v")
    code, out, err = run(capsys, "-s", memcached.address, "--", "--files-from=list.txt", "-v",
                         "a.txt")
    assert (code, out, err) == (0, "", "")
    assert item(memcached, b"--files-from=list.txt") == (0, b"looks like an option", -1)
    assert item(memcached, b"-v") == (0, b"dash v", -1)
    assert item(memcached, b"a.txt") == (0, b"A", -1)
    assert item(memcached, b"passwd") is None


@pytest.mark.parametrize("option, key", [("--prefix=--", b"--a.txt"), ("--key=--", b"--")])
def test_option_value_double_dash(memcached, tree, capsys, option, key):
    """An option whose value is exactly -- keeps it, as getopt does."""
    assert run(capsys, "-s", memcached.address, option, "a.txt") == (0, "", "")
    assert item(memcached, key) == (0, b"A", -1)


def test_number_value_double_dash_is_a_usage_error(memcached, tree, capsys):
    """-e -- is a usage error naming '--', never an internal error."""
    code, out, err = run(capsys, "-s", memcached.address, "-e", "--", "a.txt")
    assert (code, out) == (2, "")
    assert err.endswith("memccp: error: argument -e/--expire: '--' is not a number from 0 to "
                        "4294967295\n")


@pytest.mark.parametrize("argv", [
    ["--key=/x", "-s", "h", "f"], ["-vB", "--flag=3", "a", "b", "-"], ["a", "-v", "b"],
    ["-v", "a", "--expire=5", "b"], ["-5", "a"], ["--servers", "-x", "a"], ["--debug=1", "a"],
    ["--bogus", "a"], ["-Z", "a"], ["--fla=2", "--e=9", "-"], ["a", "--", "-v"], [],
    ["--include=*.gif", "--include", "*.png", "-r", "d"], ["-s=h", "a b", "-a b"],
])
def test_one_pass_parse_is_the_intermixed_parse(argv, capsys):
    """The one-pass parse of a usual command line gives what argparse's intermixed parse
    gives, options, files and errors alike."""
    parser = build_parser()

    def outcome(parse):
        try:
            options, files = expand(argv, parser)
            return vars(parse(options)), files, None
        except SystemExit as exc:
            return None, None, (exc.code, capsys.readouterr().err)

    fast = outcome(lambda options: parse(parser, options))
    assert fast == outcome(parser.parse_intermixed_args)
