"""Parity: a call through the warm helper and the same call in-process (MEMCCP_HELPER=off),
from the same context, give the same stdout, stderr, exit status and stored items: the
command lines of tests/test_differential.py and a few more, and signals mid-call."""

import os
import signal
import subprocess

import pytest

from conftest import dump_items, free_port, start_memcached, stop, text_command
from test_differential import CASES, workdir  # noqa: F401  (workdir: its files, as a fixture)
from test_helper import Memccp, runtime_dir
from contexts import (BATCH, SERVED, expected_items, many_files, names, read_line, read_rest,
                                 stop_all)

#: More command lines (as in test_differential.CASES; "environ": more variables).
OWN = {
    "key, flags, expiry, verbose": (["-v", "--key=/img/a", "-F", "7", "-e", "100", "-s", "{S}", "a.txt"], {}),
    "quiet with a missing file": (["-q", "-s", "{S}", "missing.txt", "a.txt"], {}),
    "recursive with docroot": (["-v", "-r", "--docroot", ".", "-s", "{S}", "."], {}),
    "recursive": (["-v", "-r", "-s", "{S}", "sub"], {}),
    "docroot with index": (["-v", "--docroot", ".", "--index", "c.gif", "-s", "{S}", "sub/c.gif"], {}),
    "names from stdin": (["-v", "--relative", "--files-from=-", "-s", "{S}"],
                         {"stdin": b"a.txt\nsub/c.gif\nmissing.txt\n"}),
    "NUL-separated names from stdin": (["-v", "-0", "--files-from=-", "-s", "{S}"],
                                       {"stdin": b"a.txt\0b.txt\0"}),
    "standard input under a key, verbose": (["-v", "--key=piped", "-s", "{S}", "-"], {"stdin": b"\xff\x00 x"}),
    "every server down": (["-v", "-s", "{DOWN}", "a.txt", "b.txt"], {}),
    "no server given": (["a.txt"], {}),
    "usage: --key with two files": (["--key=k", "-s", "{S}", "a.txt", "b.txt"], {}),
    "usage: unknown option": (["--bogus", "-s", "{S}", "a.txt"], {}),
    "help, narrow": (["--help"], {"environ": {"COLUMNS": "50"}}),
    "version": (["--version"], {}),
    "password without user name": (["-p", "pw", "-v", "-s", "{S}", "a.txt"], {}),
    "verify": (["--verify", "-v", "-s", "{S}", "a.txt", "big.bin"], {}),
    "two files, one key": (["-v", "--unique-keys", "-s", "{S}", "a.txt", "./a.txt"], {}),
    "prefix, suffix, nginx escape": (["-v", "--prefix=h:", "--suffix=?", "--escape=nginx", "--relative",
                                      "-s", "{S}", "sub/c.gif"], {}),
    "gzip": (["-v", "--gzip=2", "-s", "{S}", "big.bin", "a.txt"], {}),
}
ALL = {**{f"differential: {name}": case for name, case in CASES.items()}, **OWN}


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """Two memcached on TCP and one on a unix socket, shared by the module (flushed per side),
    and an address nothing answers on."""
    folder = tmp_path_factory.mktemp("parity-servers")
    tcp = [start_memcached(), start_memcached()]
    unix = start_memcached(unix_path=str(folder / "mc.sock"))
    yield tcp, unix, f"127.0.0.1:{free_port()}"
    for server in (*tcp, unix):
        stop(server)


@pytest.fixture(scope="module")
def helper(tmp_path_factory):
    """A warm helper of this context, shared by the module."""
    runner = Memccp("helper", runtime_dir(tmp_path_factory.mktemp("parity") / "run"), idle="60")
    runner.warm()
    yield runner
    stop_all(runner.directory)


def flush(server) -> None:
    assert text_command(server, b"flush_all") == b"OK\r\n"


def run_case(runner, case: str, work, servers) -> tuple:
    """One side of CASE against emptied servers: (status, stdout, stderr, items by server)."""
    argv, needs = ALL[case]
    tcp, unix, down = servers
    used = [unix] if needs.get("socket") else tcp[:needs.get("servers", 1)]
    for server in (*tcp, unix):
        flush(server)
    for server in used:
        for key, value in needs.get("preload", {}).items():
            assert text_command(server, b"set %s 0 0 %d\r\n%s" % (key, len(value), value),
                                one_line=True) == b"STORED\r\n"
    names = {"S": ",".join(s.address for s in used), "S1": used[0].address,
             "S_BLANKS": " ".join(s.address for s in used), "SOCK": used[0].address, "DOWN": down,
             "S_PLUS": used[0].address.replace(":", ":+", 1)}
    env = runner.env(LC_ALL="C.UTF-8", **needs.get("environ", {}))
    if needs.get("env"):
        env[needs["env"]] = names["S"]
    proc = runner(*[a.format(**names) for a in argv], env=env, cwd=work, input=needs.get("stdin", b""))
    items = [sorted((k, (f, v, t if t < 0 else "ttl>0")) for k, (f, v, t) in dump_items(s).items())
             for s in used]
    return proc.returncode, proc.stdout, proc.stderr, items


def without_note(err: bytes, note: str) -> bytes:
    """stderr without the --debug line saying how the call ran (it differs by design)."""
    first, _, rest = err.partition(b"\n")
    if first.startswith(b"memccp: debug: run "):
        assert first.decode().startswith(note), first
        return rest
    return err


@pytest.mark.parametrize("case", sorted(ALL))
def test_helper_as_in_process(helper, servers, workdir, case):  # noqa: F811
    """The warm helper's run of CASE and the in-process one: same stdout, stderr, exit
    status, stored items (the helper the same before and after: it served the call)."""
    off = Memccp("in-process", helper.runtime)
    in_process = run_case(off, case, workdir, servers)
    for attempt in range(2):  # once more if the helper retired meanwhile (its code changed)
        pid = helper.warm()
        through_helper = run_case(helper, case, workdir, servers)
        if helper.helper_pid() == pid:
            break
    else:
        pytest.fail("the helper changed during the call twice: it did not serve it")
    code, out, err, items = in_process
    in_process = code, out, without_note(err, "memccp: debug: run in-process (MEMCCP_HELPER=off)"), items
    code, out, err, items = through_helper
    through_helper = code, out, without_note(err, SERVED), items
    assert through_helper == in_process


# --- signals mid-call: the same end either way -------------------------------------------

def interrupted(runner, memcached, tmp_path, signum) -> tuple:
    """A call reading names from a pipe; SIGNUM sent to it (the client) once the first batch
    is stored, the pipe still open: (status, stdout, stderr, items)."""
    first = many_files(tmp_path, BATCH)
    flush(memcached)
    proc = runner.popen("-v", "-s", memcached.address, "--files-from=-", stdin=subprocess.PIPE)
    try:
        proc.stdin.write(names(first))
        proc.stdin.flush()
        out = read_line(proc.stdout)
        assert out == b"n0000\n"
        proc.send_signal(signum)
        proc.wait(300)  # (stdin still open: the signal, not the end of the names, ends it)
        out += read_rest(proc.stdout)
        err = read_rest(proc.stderr)
    finally:
        proc.kill()
        proc.wait(300)
        proc.stdin.close()
    return proc.returncode, out, err, dump_items(memcached)


@pytest.mark.parametrize("signum, status, message", [
    (signal.SIGINT, 130, b"memccp: interrupted\n"),
    (signal.SIGTERM, -signal.SIGTERM, b""),
    (signal.SIGHUP, -signal.SIGHUP, b""),
], ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_signal_mid_call_as_in_process(helper, memcached, tmp_path, signum, status, message):
    """Ctrl-C (SIGINT), SIGTERM or SIGHUP mid-call: through the helper as in-process, the
    same exit status (130 'interrupted', or death by the signal), output and items (the
    first batch only)."""
    outcomes = {}
    for runner in (Memccp("in-process", helper.runtime), helper):
        if runner is helper:
            pid = helper.warm()
        outcomes[runner.mode] = interrupted(runner, memcached, tmp_path, signum)
    assert helper.helper_pid() == pid
    assert outcomes["helper"] == outcomes["in-process"]
    code, out, err, items = outcomes["helper"]
    first = sorted((tmp_path / "many").iterdir())
    assert (code, err, items) == (status, message, expected_items(first))
    assert sorted(out.split()) == sorted(os.fsencode(p.name) for p in first)
