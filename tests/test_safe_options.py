"""Safety around the copy: selection (--include/--exclude), one key for two files, usage
errors for options that would store something else than asked, escaped output, secrets."""

import io
import os

import pytest

from conftest import dump_items, item
from helpers import About, run
from memccp_py.cli import build_parser



@pytest.fixture
def site(tmp_path):
    """A docroot: gifs, pngs, a text file, a cache directory and an en/ and de/ index.html."""
    doc = tmp_path / "doc"
    files = {"a.gif": b"A", "img/b.gif": b"B", "img/c.png": b"C", "notes.txt": b"N",
             "cache/d.gif": b"D", "en/index.html": b"english", "de/index.html": b"deutsch"}
    for rel, data in files.items():
        (doc / rel).parent.mkdir(parents=True, exist_ok=True)
        (doc / rel).write_bytes(data)
    return doc


def test_include_exclude_select_like_find(memcached, site, capsys):
    """--include '*.gif' --include '*.png' --exclude 'cache/' stores just those, keyed by URI."""
    code, out, err = run(capsys, "-s", memcached.address, f"--docroot={site}", "-r", str(site), "-v",
                         "--include=*.gif", "--include=*.png", "--exclude=cache/", "-e", "60")
    assert (code, err) == (0, "memccp: 3 files, 3 stored (3 bytes), 0 failed\n")
    assert out == "/a.gif\n/img/b.gif\n/img/c.png\n"
    assert item(memcached, b"/a.gif") == (0, b"A", About(60))
    assert item(memcached, b"/img/c.png") == (0, b"C", About(60))
    for key in (b"/notes.txt", b"/cache/d.gif", b"/en/index.html"):
        assert item(memcached, key) is None, key


def test_exclude_wins_and_matches_paths_in_lists(memcached, site, capsys):
    """With --files-from and --docroot, a GLOB with / matches the path below --docroot; --exclude wins."""
    names = "\n".join(str(p) for p in sorted(site.rglob("*")) if p.is_file()) + "\n"
    code, out, err = run_with_stdin(capsys, names, "-s", memcached.address, f"--docroot={site}",
                                    "--files-from=-", "--include=img/*", "--include=*.txt",
                                    "--exclude=*.png")
    assert (code, out, err) == (0, "", "")
    assert item(memcached, b"/img/b.gif") == (0, b"B", -1)
    assert item(memcached, b"/notes.txt") == (0, b"N", -1)
    for key in (b"/img/c.png", b"/a.gif", b"/cache/d.gif"):
        assert item(memcached, key) is None, key


def run_with_stdin(capsys, text: str, *argv):
    import sys

    old = sys.stdin
    sys.stdin = io.TextIOWrapper(io.BytesIO(text.encode()))
    try:
        return run(capsys, *argv)
    finally:
        sys.stdin = old


def test_same_key_twice_warns_and_the_last_wins(memcached, site, capsys):
    """-r without --docroot: en/ and de/index.html share a key; a warning names both, the last
    one walked (en) is stored; exit 0, on both paths."""
    for extra in ([], ["-B"]):
        memcached_flush(memcached)
        code, out, err = run(capsys, *extra, "-s", memcached.address,
                             str(site / "de" / "index.html"), str(site / "en" / "index.html"))
        assert (code, out) == (0, "")
        assert err == (f"memccp: {site}/en/index.html: warning: same key 'index.html' as "
                       f"{site}/de/index.html: the last one is stored (--docroot DIR keys files by "
                       "their path)\n")
        assert item(memcached, b"index.html") == (0, b"english", -1)


def memcached_flush(server):
    from conftest import text_command

    text_command(server, b"flush_all")


def test_unique_keys_refuses_the_second(memcached, site, capsys):
    """--unique-keys: the second file with a taken key is an error, not stored; exit 1."""
    code, out, err = run(capsys, "-s", memcached.address, "--unique-keys", "-r", str(site),
                         "--include=index.html")
    assert (code, out) == (1, "")
    assert err == (f"memccp: {site}/en/index.html: same key 'index.html' as "
                   f"{site}/de/index.html: not stored (--unique-keys)\n")
    assert item(memcached, b"index.html") == (0, b"deutsch", -1)


@pytest.mark.parametrize("argv, message", [
    (["--gzip=0"], "argument --gzip: 0 marks nothing"),
    (["--key=k", "-r"], "--key names one file, 1 given with --recursive"),
    (["--key=k", "--files-from=/dev/null"], "--key names one file, 1 given and --files-from"),
    (["-F", "\u0661\u0662"], "argument -F/--flag/--flags: '\u0661\u0662' is not a number"),
    (["-e", "\u0661\u0662"], "argument -e/--expire: '\u0661\u0662' is not a number"),
    (["--docroot="], "--docroot is empty (an unset variable?): name a directory"),
    (["-e", "2592001"], "--expire 2592001 is over 30 days, so memcached reads it as a unix time, "
                        "1970-01-31 00:00:01 UTC, which is past: every item would expire at once"),
])
def test_usage_errors_store_nothing(memcached, site, capsys, argv, message):
    """Options that would store something else than asked are usage errors: exit 2, nothing stored."""
    code, out, err = run(capsys, "-s", memcached.address, *argv, str(site / "a.gif"))
    assert (code, out) == (2, "")
    assert message in err.splitlines()[-1], err
    assert item(memcached, b"a.gif") is None and item(memcached, b"k") is None


def test_expire_as_future_unix_time_is_kept(memcached, site, capsys):
    """An --expire over 30 days that is still ahead is a unix time: stored with that expiry."""
    import time

    when = int(time.time()) + 3600
    code, out, err = run(capsys, "-s", memcached.address, "-e", str(when), str(site / "a.gif"))
    assert (code, out, err) == (0, "", "")
    flags, value, left = item(memcached, b"a.gif")
    assert (flags, value) == (0, b"A") and 3590 <= left <= 3601  # memcached counts whole seconds


def test_nul_in_a_newline_list_is_named(memcached, site, capsys):
    """A name with a NUL byte in a newline-separated list is one error line; the others are stored."""
    code, out, err = run_with_stdin(capsys, f"{site}/a.gif\nbad\0name\n{site}/notes.txt\n",
                                    "-s", memcached.address, "--files-from=-")
    assert (code, out) == (1, "")
    assert err == ("memccp: bad\\x00name: file name contains a NUL byte "
                   "(for NUL-separated names use -0)\n")
    assert item(memcached, b"a.gif")[1] == b"A" and item(memcached, b"notes.txt")[1] == b"N"


def test_control_bytes_are_escaped_everywhere(memcached, tmp_path, capsys):
    """Names with ESC and BEL: escaped as \\xNN in errors, warnings and -v; stored unescaped."""
    evil = tmp_path / "a\x1b[2Jb\x07.txt"
    evil.write_bytes(b"x")
    missing = tmp_path / "gone\x1b]0;title\x07"
    code, out, err = run(capsys, "-s", memcached.address, "-v", str(evil), str(missing))
    assert code == 1
    assert out == "a\\x1b[2Jb\\x07.txt\n"
    assert err == (f"memccp: {tmp_path}/a\\x1b[2Jb\\x07.txt: warning: key contains space or control "
                   "bytes (0x07, 0x1B): a text-protocol reader such as nginx cannot fetch it "
                   "(see --escape=nginx)\n"
                   f"memccp: {tmp_path}/gone\\x1b]0;title\\x07: No such file or directory\n"
                   "memccp: 2 files, 1 stored (1 bytes), 1 failed\n")
    code, out, err = run(capsys, "-s", memcached.address, "--files-from", str(missing))
    assert (code, out) == (2, "")
    assert err == f"memccp: --files-from {tmp_path}/gone\\x1b]0;title\\x07: No such file or directory\n"
    code, out, err = run(capsys, "-s", memcached.address, "--bogus\x1b[0m")
    assert code == 2 and "\x1b" not in err and "--bogus\\x1b[0m" in err


def test_password_file_is_never_shown(memcached, site, tmp_path, capsys):
    """A password file that is not UTF-8: a usage error naming the file, never its contents;
    a file others can read: a warning (as ssh), the secret never printed."""
    secret = tmp_path / "pw"
    secret.write_bytes(b"secret\xe9\nsecond-line\n")
    secret.chmod(0o600)
    code, out, err = run(capsys, "-s", memcached.address, "-u", "alice", "--password-file",
                         str(secret), "-d", str(site / "a.gif"))
    assert (code, out) == (2, "")
    assert err == (f"memccp: --password-file {secret}: the password is not valid UTF-8 "
                   "(SASL PLAIN needs UTF-8)\n")
    secret.write_bytes(b"hunter2\n")
    secret.chmod(0o644)
    code, out, err = run(capsys, "-s", memcached.address, "-u", "alice", "--password-file",
                         str(secret), "-v", "-d", str(site / "a.gif"))
    assert f"memccp: warning: --password-file {secret} can be read by others than its owner " \
           "(mode 0644): chmod 600 it\n" in err
    assert "hunter2" not in err + out


def test_unreadable_directory_is_named(memcached, as_nobody):
    """-r as nobody: a directory it may not list is named, exit 1; the rest is stored."""
    top, run_as_nobody = as_nobody
    doc = top / "doc"
    (doc / "closed").mkdir(parents=True)
    (doc / "closed" / "x.txt").write_bytes(b"x")
    (doc / "open.txt").write_bytes(b"o")
    doc.chmod(0o755)
    (doc / "open.txt").chmod(0o644)
    (doc / "closed").chmod(0o700)
    result = run_as_nobody("-s", memcached.address, f"--docroot={doc}", "-r", str(doc))
    assert (result.returncode, result.stdout, result.stderr) == (
        1, "", f"memccp: {doc}/closed: cannot read directory: Permission denied\n")
    assert item(memcached, b"/open.txt") == (0, b"o", -1)
    assert item(memcached, b"/closed/x.txt") is None


def test_exit_statuses_are_documented():
    """--help (and so the man page) names every exit status, internal error 70 included."""
    text = build_parser().format_help().replace("\n", " ")
    for words in ("0 all files stored", "1 some file or server failed", "2 usage error",
                  "70 internal error", "130 interrupted"):
        assert " ".join(words.split()) in " ".join(text.split()), words


def test_exclude_holds_through_links(memcached, tmp_path, capsys):
    """--exclude applies to what a link leads to: a link to an excluded file or into an
    excluded directory is left out like its target."""
    doc = tmp_path / "doc"
    (doc / "app").mkdir(parents=True)
    (doc / "users").mkdir()
    (doc / "app" / "config.php").write_bytes(b"<?php $pass='hunter2';")
    (doc / "app" / "notes.txt").write_bytes(b"private")
    (doc / "users" / "notes.txt").symlink_to("../app/config.php")
    (doc / "users" / "app").symlink_to("../app")
    (doc / "users" / "mine.txt").write_bytes(b"mine")
    for exclude in (["--exclude=*.php", "--exclude=app/"], ["--exclude=app/"]):
        memcached_flush(memcached)
        code, out, err = run(capsys, "-s", memcached.address, f"--docroot={doc}", "-r", str(doc),
                             *exclude)
        assert (code, out, err) == (0, "", "")
        assert item(memcached, b"/users/mine.txt") == (0, b"mine", -1)
        for key in (b"/users/notes.txt", b"/users/app/notes.txt", b"/app/config.php"):
            assert item(memcached, key) is None, (exclude, key)


def test_exclude_holds_below_a_linked_directory(memcached, tmp_path, capsys):
    """--exclude with a path judges the files below a link to a directory by their real path
    too: config/*.key leaves out public/cfg/db.key when public/cfg -> ../config."""
    doc = tmp_path / "doc"
    (doc / "config").mkdir(parents=True)
    (doc / "public").mkdir()
    (doc / "config" / "db.key").write_bytes(b"secret")
    (doc / "config" / "site.css").write_bytes(b"css")
    (doc / "public" / "cfg").symlink_to("../config")
    code, out, err = run(capsys, "-s", memcached.address, f"--docroot={doc}", "-r", str(doc / "public"),
                         "--exclude=config/*.key")
    assert (code, out, err) == (0, "", "")
    assert item(memcached, b"/public/cfg/site.css") == (0, b"css", -1)
    assert item(memcached, b"/public/cfg/db.key") is None


def test_empty_name_names_nothing(memcached, tmp_path, capsys, monkeypatch):
    """An empty FILE (an unset variable) is no file, not the working directory: with -r,
    with --docroot, or alone; the run goes on with the other files; exit 1."""
    (tmp_path / "secret").write_bytes(b"the working directory's")
    (tmp_path / "a.txt").write_bytes(b"a")
    monkeypatch.chdir(tmp_path)
    for extra in (["-r"], [f"--docroot={tmp_path}"], []):
        memcached_flush(memcached)
        code, out, err = run(capsys, "-s", memcached.address, *extra, "", str(tmp_path / "a.txt"))
        assert (code, out) == (1, ""), extra
        assert len(err.splitlines()) == 1 and err.startswith("memccp: : "), (extra, err)
        assert [value for _, value, _ in dump_items(memcached).values()] == [b"a"], extra


def test_files_from_list_opened_by_the_link_rule(memcached, tmp_path, capsys):
    """A --files-from list is opened without blocking (a FIFO with no writer is an empty
    list) and by the link rule (a link to /proc/self/environ is refused, nothing shown)."""
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "env").symlink_to("/proc/self/environ")
    assert run(capsys, "-s", memcached.address, f"--files-from={tmp_path / 'fifo'}") == (0, "", "")
    code, out, err = run(capsys, "-s", memcached.address, f"--files-from={tmp_path / 'env'}")
    assert (code, out) == (2, "")
    assert err.startswith(f"memccp: --files-from {tmp_path}/env: not read: link {tmp_path}/env "
                          "leads to /proc/") and err.endswith("/environ: it leads into /proc\n")
    assert dump_items(memcached) == {}


def test_exclude_directory_for_every_source(memcached, tmp_path, capsys, monkeypatch):
    """An excluded directory leaves out its files whether they come from -r, from positional
    directories under -r, or from --files-from names."""
    doc = tmp_path / "sel"
    for rel in (".git/config", "private/secret.html", "index.html"):
        (doc / rel).parent.mkdir(parents=True, exist_ok=True)
        (doc / rel).write_bytes(rel.encode())
    names = "".join(f"{p}\n" for p in sorted(map(str, doc.rglob("*"))) if os.path.isfile(p))
    runs = [["-r", str(doc / ".git"), str(doc / "private"), str(doc / "index.html")],
            ["--files-from=-"]]
    for argv in runs:
        memcached_flush(memcached)
        code, out, err = run_with_stdin(capsys, names, "-s", memcached.address, f"--docroot={doc}",
                                        "--exclude=.git", "--exclude=private/", *argv)
        assert (code, out, err) == (0, "", ""), argv
        assert item(memcached, b"/index.html") == (0, b"index.html", -1)
        assert item(memcached, b"/.git/config") is None and item(memcached, b"/private/secret.html") is None


def test_bad_glob_is_a_usage_error(memcached, site, capsys):
    """A glob that is no pattern (a reversed range) is a usage error, not an internal error."""
    code, out, err = run(capsys, "-s", memcached.address, "--include=[z-a]", str(site / "a.gif"))
    assert (code, out) == (2, "")
    assert err.startswith("memccp: --include '[z-a]': not a pattern (bad character range")
    assert item(memcached, b"a.gif") is None


def test_files_from_is_bounded(memcached, site, tmp_path, capsys):
    """--files-from: a device (endless) is a usage error; a name over 4096 bytes is one
    error, and the names after it are still stored."""
    code, out, err = run(capsys, "-s", memcached.address, "--files-from=/dev/zero")
    assert (code, out, err) == (2, "", "memccp: --files-from /dev/zero: not a regular file or a pipe\n")
    listing = tmp_path / "list"
    listing.write_bytes(b"x" * 100_000 + b"\n" + os.fsencode(site / "a.gif") + b"\n")
    code, out, err = run(capsys, "-s", memcached.address, f"--files-from={listing}")
    assert (code, out) == (1, "")
    assert err == ("memccp: " + "x" * 64 + "...: a name in the list is longer than 4096 bytes: "
                   "left out\n")
    assert item(memcached, b"a.gif") == (0, b"A", -1)


def test_debug_output_escapes_control_bytes(site, capsys):
    """--debug lines escape control bytes too (a server list is user input)."""
    code, out, err = run(capsys, "-d", "-s", "/nonexistent\x1b[31m", str(site / "a.gif"))
    assert code == 1 and "\x1b" not in err and "/nonexistent\\x1b[31m" in err


def test_plus_sign_as_strtoul_reads_it(memcached, site, capsys):
    """-F +5 is 5, as C memccp's strtoul reads it."""
    assert run(capsys, "-s", memcached.address, "-F", "+5", str(site / "a.gif")) == (0, "", "")
    assert item(memcached, b"a.gif") == (5, b"A", -1)


def test_settings_frozen_and_never_show_the_password():
    """The Settings of a run cannot be changed, and their printed form has no password."""
    from memccp_py.settings import parse_command_line, read_settings
    from memccp_py.settings.definition import build_parser

    args = parse_command_line(["-s", "127.0.0.1", "-u", "bob", "-p", "s3cret", "f"], build_parser())
    settings = read_settings(args, {}, None)
    assert settings.password == "s3cret" and settings.username == "bob"
    assert "s3cret" not in repr(settings) and "username='bob'" in repr(settings)
    with pytest.raises(AttributeError):
        settings.password = "other"
