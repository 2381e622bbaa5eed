"""A call through the helper ends as its caller would in-process (issue 19): a client killed
mid-call stops its worker at once, signals ignored at start stay ignored, a background job
reading its terminal and a set-group-ID start run in-process."""

import ast
import ctypes
import errno
import os
import resource
import shutil
import signal
import subprocess
import threading
import uuid

import pytest

from conftest import MEMCACHED, dump_items, text_command, text_get
from memccp_py.copier import BATCH_ITEMS
from test_helper import ROOT, SERVED, Memccp, alive, result, runtime_dir, wait_for

from contexts import (BACKGROUND, BATCH, CHROOT, DIRECT, FULL_PATH, IP, MIXED, NAME, NSENTER,
    OFF, REFUSED, SETPRIV, STARTING, TESTS, UNSHARE, Within, end, expected_items, first_line,
    helper_name, holder, main, many_files, memcached_flush, names, read_line, read_rest, refused,
    root_only, stop_all, worker_of)


@root_only
def test_client_killed_stops_its_worker_at_once(main, memcached, tmp_path):
    """The client killed (SIGKILL) mid-call: its worker is ended at once, nobody holds the
    caller's stdout (the reader gets EOF) or stdin (writing more names: EPIPE), and nothing
    is stored after the kill."""
    helper = main.warm()
    first, more = many_files(tmp_path, BATCH), many_files(tmp_path, 10, "late")
    proc = main.popen("-d", "-v", "-s", memcached.address, "--files-from=-", stdin=subprocess.PIPE)
    try:
        worker = worker_of(read_line(proc.stderr))
        proc.stdin.write(names(first))
        proc.stdin.flush()
        assert read_line(proc.stdout) == b"n0000\n"  # the first batch is stored: the call runs
        assert alive(worker)
        proc.kill()
        proc.wait(300)
        wait_for(lambda: not alive(worker), f"worker {worker} to end")
        read_rest(proc.stdout)
        read_rest(proc.stderr)
        with pytest.raises(BrokenPipeError):
            proc.stdin.write(names(more))
            proc.stdin.flush()
    finally:
        proc.kill()
        proc.wait(300)
    assert dump_items(memcached) == expected_items(first)
    assert main.helper_pid() == helper and main.served()


def _ignore(signum):
    return lambda: signal.signal(signum, signal.SIG_IGN)


def ignored_signal_run(runner, memcached, tmp_path, signum) -> tuple:
    """A call reading names from a pipe, started with SIGNUM ignored; SIGNUM sent to the
    client (and to its worker, if one runs it) once the first batch is stored, then the rest
    of the names: (status, stdout, stderr without debug lines, items)."""
    first, more = many_files(tmp_path, BATCH), many_files(tmp_path, 5, "late")
    memcached_flush(memcached)
    proc = subprocess.Popen([runner.bin, "-d", "-v", "-s", memcached.address, "--files-from=-"],
                            env=runner.env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, preexec_fn=_ignore(signum))
    try:
        line = read_line(proc.stderr)
        targets = [proc.pid] + ([worker_of(line)] if runner.mode == "helper" else [])
        proc.stdin.write(names(first))
        proc.stdin.flush()
        out = read_line(proc.stdout)
        assert out == b"n0000\n"
        for pid in targets:
            os.kill(pid, signum)  # ignored: dropped when sent, nothing pending
        proc.stdin.write(names(more))
        proc.stdin.close()
        out += read_rest(proc.stdout)
        err = read_rest(proc.stderr)
        proc.wait(300)
    finally:
        proc.kill()
        proc.wait(300)
    kept = [l for l in err.decode().splitlines(True) if not l.startswith("memccp: debug:")]
    return proc.returncode, out.decode(), "".join(kept), dump_items(memcached), line.decode()


@root_only
@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_signal_ignored_at_start_stays_ignored(tmp_path, memcached, signum):
    """nohup memccp ... / a script's memccp ... &: a signal ignored at start and sent
    mid-call changes nothing, through the helper (client and worker) as in-process: exit 0,
    every name stored."""
    outcomes = {}
    for mode in ("helper", "in-process"):
        runner = Memccp(mode, runtime_dir(tmp_path / f"run-{mode}"), idle="30")
        try:
            if mode == "helper":
                runner.warm()
            code, out, err, items, note = ignored_signal_run(runner, memcached, tmp_path, signum)
            assert note.startswith(SERVED if mode == "helper" else OFF), note
            outcomes[mode] = code, out, err, items
        finally:
            stop_all(runner.directory)
    paths = sorted((tmp_path / "many").iterdir())
    assert outcomes["helper"] == outcomes["in-process"]
    code, out, err, items = outcomes["helper"]
    assert (code, err) == (0, f"memccp: {BATCH + 5} files, {BATCH + 5} stored "
                              f"({sum(p.stat().st_size for p in paths)} bytes), 0 failed\n")
    assert sorted(out.split()) == sorted(p.name for p in paths)
    assert items == expected_items(paths)


# --- a background job whose standard input is its terminal ----------------------------------

PTY_DRIVER = r"""
import fcntl, os, signal, sys, termios, time
memccp, server, errors = sys.argv[1:4]
master, slave = os.openpty()
leader = os.fork()
if leader == 0:
    try:
        os.close(master)
        os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
        hold_r, hold_w = os.pipe()
        fg = os.fork()
        if fg == 0:  # the terminal's foreground process group: waits until let go
            os.setpgid(0, 0)
            os.close(hold_w)
            os.read(hold_r, 1)
            os._exit(0)
        os.close(hold_r)
        os.setpgid(fg, fg)
        os.tcsetpgrp(slave, fg)
        bg = os.fork()
        if bg == 0:  # a background job whose stdin is the terminal
            os.setpgid(0, 0)
            os.dup2(slave, 0)
            os.dup2(os.open(errors, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 2)
            os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
            os.closerange(3, 1024)
            os.execv(memccp, [memccp, "-d", "-s", server, "-"])
        try:  # as shells do: both sides set it, whichever comes first
            os.setpgid(bg, bg)
        except PermissionError:  # the child has exec'd already, in its own group
            pass
        deadline, outcome = time.monotonic() + 300, "still running"  # a hang guard
        while time.monotonic() < deadline:
            pid, status = os.waitpid(bg, os.WUNTRACED | os.WNOHANG)
            if pid:
                if os.WIFSTOPPED(status):
                    outcome = "stopped by " + signal.Signals(os.WSTOPSIG(status)).name
                elif os.WIFEXITED(status):
                    outcome = "exited %d" % os.WEXITSTATUS(status)
                else:
                    outcome = "killed by %d" % os.WTERMSIG(status)
                break
            time.sleep(0.02)
        try:
            os.kill(bg, signal.SIGKILL)
            os.waitpid(bg, 0)
        except ChildProcessError:
            pass
        os.close(hold_w)
        os.waitpid(fg, 0)
        os.write(1, outcome.encode())
        os._exit(0)
    except BaseException as exc:
        os.write(1, ("error: %r" % exc).encode())
        os._exit(1)
os.close(slave)
os.waitpid(leader, 0)
"""


@root_only
@pytest.mark.parametrize("mode", ["helper", "in-process"])
def test_background_job_reading_its_terminal(tmp_path, memcached, mode):
    """`memccp -s S - &` with stdin its terminal, in a background process group: not taken by
    the warm helper (a background job...), run in-process, and stopped by SIGTTIN (job control)
    rather than reading the terminal."""
    runner = Memccp(mode, runtime_dir(tmp_path / "run"), idle="30")
    try:
        if mode == "helper":
            runner.warm()
        errors = tmp_path / "stderr"
        proc = subprocess.run(["/usr/bin/python3", "-c", PTY_DRIVER, runner.bin, memcached.address, str(errors)],
                              env=runner.env(), capture_output=True, timeout=300)
        assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"stopped by SIGTTIN", b"")
        expected = REFUSED.format(BACKGROUND) if mode == "helper" else OFF
        assert errors.read_text().split("\n", 1)[0] == expected
        assert dump_items(memcached) == {}
        if mode == "helper":
            assert runner.served()
    finally:
        stop_all(runner.directory)


# --- set-user-ID / set-group-ID -------------------------------------------------------------

def helper_files(directory: str) -> list:
    """The helpers' sockets and locks in *directory*."""
    return sorted(os.listdir(directory))


@root_only
def test_set_group_id_start_runs_in_process(main, memcached, tmp_path):
    """Started with real gid != effective gid: in-process (the set-user-ID note), stored
    correctly; no helper serves it and none is started for it."""
    (tmp_path / "f").write_bytes(b"mixed")
    argv = ("-d", "-v", "-s", memcached.address, str(tmp_path / "f"))
    proc = main(*argv, preexec_fn=lambda: os.setresgid(0, 4242, 0))
    assert (proc.returncode, proc.stdout, first_line(proc)) == (0, b"f\n", MIXED)
    assert not os.path.exists(main.directory)  # not even the socket directory
    assert text_get(memcached, b"f") == (0, b"mixed")
    helper = main.warm()
    listing = helper_files(main.directory)
    memcached_flush(memcached)
    proc = main(*argv, preexec_fn=lambda: os.setresgid(0, 4242, 0))
    assert (proc.returncode, proc.stdout, first_line(proc)) == (0, b"f\n", MIXED)
    assert text_get(memcached, b"f") == (0, b"mixed")
    assert helper_files(main.directory) == listing and main.helper_pid() == helper
