"""A worker serves calls one after another: each call finds it as the first one did (its
directory, umask, environment, signals, streams, arguments, limits put back), nothing of a
caller stays between calls, and a worker a call left changed (a descriptor, a thread, a log
handler, memory, its number of calls) ends instead of serving again; the helper does not
kill a worker whose call is over when its client hangs up, and counts it a spare once it is
back."""

import ctypes
import json
import logging
import os
import resource
import signal
import socket
import subprocess
import sys
import threading

import pytest

from conftest import SASL_PASSWORD, dump_items
from helpers import wait_for
from memccp_py.warm import helper as helper_module
from memccp_py.warm import idle as idle_module
from memccp_py.warm.idle import IdleState
from memccp_py.warm.takeover import set_environment
from test_helper import SERVED, Memccp, helper_runner  # noqa: F401  (a fixture)
from test_helper_reap import WORKER, bare_helper


def in_child(body) -> dict:
    """Run *body()* (it changes this process) in a forked child; return what it returned."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read)
            os.write(write, json.dumps(body()).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    return json.loads(data)


def test_a_call_is_undone(tmp_path):
    """Directory, umask, environment, signal dispositions and mask, streams and arguments a
    call changed are the worker's own again, and it may serve another call."""
    libc = ctypes.CDLL(None)
    libc.getenv.restype = ctypes.c_char_p

    def body():
        idle = IdleState()
        before = (os.getcwd(), os.umask(0o022), dict(os.environ), signal.getsignal(signal.SIGHUP),
                  sys.stdout, list(sys.argv))
        os.umask(before[1])
        os.chdir(tmp_path)
        os.umask(0o077)
        set_environment([b"MEMCACHED_PASSWORD=hunter2", b"PATH=/nowhere"])
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
        sys.stdout, sys.argv = None, ["memccp", "--caller's"]
        limit = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit[0] - 1, limit[1]))
        why = idle.restore()
        umask = os.umask(0o022)
        return {"why": why, "cwd": os.getcwd() == before[0], "umask": umask == before[1],
                "environ": dict(os.environ) == before[2], "putenv": libc.getenv(b"MEMCACHED_PASSWORD"),
                "sighup": signal.getsignal(signal.SIGHUP) == before[3],
                "masked": signal.SIGUSR1 in signal.pthread_sigmask(signal.SIG_BLOCK, ()),
                "stdout": sys.stdout is before[4], "argv": sys.argv == before[5],
                "limit": resource.getrlimit(resource.RLIMIT_NOFILE) == limit}

    assert in_child(body) == {"why": None, "cwd": True, "umask": True, "environ": True, "putenv": None,
                              "sighup": True, "masked": False, "stdout": True, "argv": True, "limit": True}


@pytest.mark.parametrize("left, why", [
    ("descriptor", "a descriptor was left open or closed"),
    ("thread", "a thread was left running"),
    ("memory", "memory grew"),
    ("log handler", "logging was left configured"),
    ("calls", f"served {idle_module.MAX_CALLS} calls"),
])
def test_a_call_that_left_something_ends_the_worker(left, why):
    """What a call left that cannot be put back, or its last allowed call, ends the worker."""
    def body():
        idle = IdleState()
        kept = []
        if left == "descriptor":
            kept.append(os.open(os.devnull, os.O_RDONLY))
        elif left == "thread":
            stop = threading.Event()
            threading.Thread(target=stop.wait, daemon=True).start()
        elif left == "log handler":
            logging.getLogger().addHandler(logging.NullHandler())
        elif left == "memory":
            kept.append(bytearray(idle_module.MAX_GROWTH + (4 << 20)))
            kept[-1][::4096] = b"x" * len(kept[-1][::4096])  # resident, not only reserved
        else:
            idle.calls = idle_module.MAX_CALLS - 1
        return [idle.restore()]

    assert in_child(body) == [why]


def test_a_worker_whose_call_is_over_is_not_killed_for_its_client_hanging_up(monkeypatch):
    """The worker said its call was over ("D") before its client had the status; the client
    hung up at once, seen in the same look: the worker is not killed but continued (were
    it stopped by the client's Ctrl-Z), and is a spare only once it says it is back ("F")."""
    helper, worker_end = bare_helper()
    helper.spares = set()
    kept, client_end = socket.socketpair()
    helper.workers[WORKER] = os.dup(kept.fileno())
    signals = []
    monkeypatch.setattr(helper_module.os, "kill", lambda pid, signum: signals.append((pid, signum)))
    try:
        worker_end.send(b"D%d" % WORKER)
        client_end.close()  # hung up
        conn = helper.workers[WORKER]
        assert helper._heard({conn, helper.channel.fileno()}, {conn: WORKER}) is True
        assert signals == [] and helper.workers == {WORKER: conn} and helper.spares == set()
        assert helper._heard({conn}, {conn: WORKER}) is False  # the next look: still hung up
        assert signals == [(WORKER, signal.SIGCONT)] and helper.spares == set()
        worker_end.send(b"F%d" % WORKER)
        assert helper._heard({helper.channel.fileno()}, {}) is True
        assert helper.workers == {} and helper.spares == {WORKER}
        # A client that hangs up while its call runs has its worker killed:
        helper.workers[WORKER] = conn = os.dup(kept.fileno())
        helper.spares.discard(WORKER)
        assert helper._heard({conn}, {conn: WORKER}) is False
        assert signals[-1] == (WORKER, signal.SIGKILL)
    finally:
        for sock in (helper.channel, worker_end, kept):
            sock.close()


def test_a_worker_that_served_and_ended_is_no_failure(monkeypatch):
    """A spare that served calls and then ended (a call left it changed) is replaced, not
    counted as a spare that failed to start."""
    helper, worker_end = bare_helper()
    helper.served.add(WORKER)
    answers = iter([(WORKER, 0), (0, 0)])
    monkeypatch.setattr(helper_module.os, "waitpid", lambda pid, options: next(answers))
    try:
        helper._reap()
        assert helper.spares == set() and helper.failures == 0 and helper.served == set()
    finally:
        helper.channel.close()
        worker_end.close()


# --- through a real helper -------------------------------------------------------------------

def worker_of(stderr: bytes) -> int:
    """The worker pid of --debug's first line (a call the helper ran)."""
    line = stderr.split(b"\n", 1)[0]
    assert line.startswith(SERVED.encode()), stderr
    return int(line.rsplit(b"worker ", 1)[1].rstrip(b")"))


def test_calls_one_after_another_are_each_as_in_process(helper_runner, memcached, tmp_path):
    """Three calls from other directories and environments, served by one worker, each give
    what the same call gives in-process: its own files, its own servers or none."""
    for name, content in (("a", b"from a"), ("b", b"from b")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "f").write_bytes(content)
    helper_runner.warm()
    in_process = Memccp("in-process", helper_runner.runtime)
    calls = [("a", {"MEMCACHED_SERVERS": memcached.address}, ["--key=/one", "f"]),
             ("b", {}, ["--key=/two", "f"]),
             ("b", {}, ["-s", memcached.address, "--key=/three", "f"])]
    workers, outcomes = set(), []
    for directory, env, argv in calls:
        cwd = tmp_path / directory
        served = helper_runner("-d", *argv, cwd=cwd, env=helper_runner.env(**env))
        workers.add(worker_of(served.stderr))
        alone = in_process("-d", *argv, cwd=cwd, env=in_process.env(**env))
        # the first line says how the call ran; the rest must be the same
        same = [(proc.returncode, proc.stdout, proc.stderr.split(b"\n", 1)[1]) for proc in (served, alone)]
        assert same[0] == same[1]
        outcomes.append(same[0][0])
    assert len(workers) == 1
    assert outcomes[0] == 0 and outcomes[1] != 0 and outcomes[2] == 0
    assert dump_items(memcached) == {b"/one": (0, b"from a", -1), b"/three": (0, b"from b", -1)}


def test_a_signal_one_caller_ignored_interrupts_the_next(helper_runner, memcached, tmp_path):
    """A caller that ignores SIGINT, then one that does not, on the same worker: Ctrl-C
    interrupts the second ('interrupted', exit 130, nothing stored)."""
    (tmp_path / "f").write_bytes(b"x")
    helper_runner.warm()
    first = helper_runner("-d", "-s", memcached.address, "--key=/ignoring", str(tmp_path / "f"),
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    assert first.returncode == 0
    fifo = tmp_path / "names"
    os.mkfifo(fifo)
    proc = helper_runner.popen("-d", "-s", memcached.address, f"--files-from={fifo}")
    with open(fifo, "w"):  # returns once the run has opened the fifo: it is waiting for names
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=300)  # a hang guard: it ends at once
    assert worker_of(err) == worker_of(first.stderr)
    assert (proc.returncode, out, err.split(b"\n")[-2]) == (130, b"", b"memccp: interrupted")
    assert dump_items(memcached) == {b"/ignoring": (0, b"x", -1)}


def test_between_calls_a_worker_holds_nothing_of_its_caller(helper_runner, memcached, tmp_path):
    """Once its call is over, the worker waits in its own directory with /dev/null as its
    standard descriptors: the caller's directory, pipes and terminal are free."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "f").write_bytes(b"x")
    helper_runner.warm()
    proc = helper_runner("-d", "-s", memcached.address, "f", cwd=work, stdin=subprocess.PIPE)
    worker = worker_of(proc.stderr)
    assert proc.returncode == 0 and dump_items(memcached) == {b"f": (0, b"x", -1)}
    wait_for(lambda: os.readlink(f"/proc/{worker}/fd/1") == os.devnull, "the worker to let go")
    assert os.readlink(f"/proc/{worker}/cwd") == "/"
    assert [os.readlink(f"/proc/{worker}/fd/{fd}") for fd in (0, 1, 2)] == [os.devnull] * 3
    assert worker_of(helper_runner("-d").stderr) == worker  # and it serves the next call


def test_debug_lines_of_one_call_are_not_written_into_the_next(helper_runner, sasl_memcached, tmp_path):
    """--debug shows bmemcached's lines (SASL) for its own call only: the next call, on the
    same worker, without --debug, writes nothing to its standard error, as in-process."""
    (tmp_path / "f").write_bytes(b"x")
    helper_runner.warm()
    env = helper_runner.env(MEMCACHED_PASSWORD=SASL_PASSWORD)
    argv = ["-u", "alice", "-s", sasl_memcached.address, str(tmp_path / "f")]
    debugged = helper_runner("-d", *argv, env=env)
    assert debugged.returncode == 0
    assert b"debug: bmemcached.protocol: Authenticating as alice" in debugged.stderr
    quiet = helper_runner(*argv, env=env)
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, b"", b"")
    again = helper_runner("-d", *argv, env=env)
    assert worker_of(again.stderr) == worker_of(debugged.stderr)
    assert again.stderr.count(b"debug: bmemcached.protocol: Authenticating as alice") == 1


def test_a_warning_said_once_is_said_again_by_the_next_call(helper_runner, memcached, tmp_path):
    """Python says a warning once per process (a pattern's FutureWarning): each of two calls
    on one worker says it, as each does in a process of its own."""
    (tmp_path / "a.txt").write_bytes(b"x")
    helper_runner.warm()
    in_process = Memccp("in-process", helper_runner.runtime)
    argv = ["-d", "-s", memcached.address, "--exclude", "[x&&y]", "a.txt"]
    alone = in_process(*argv, cwd=tmp_path)
    assert b"FutureWarning" in alone.stderr
    served = [helper_runner(*argv, cwd=tmp_path) for _ in range(2)]
    assert worker_of(served[0].stderr) == worker_of(served[1].stderr)
    for proc in served:
        assert (proc.returncode, proc.stdout, proc.stderr.split(b"\n", 1)[1]) == \
            (alone.returncode, alone.stdout, alone.stderr.split(b"\n", 1)[1])


def test_a_signal_for_a_call_that_is_over_never_reaches_the_next(helper_runner, memcached, tmp_path):
    """A caller stopped after its call was over, then sent SIGINT and continued, while
    another call runs: the other call goes on as in-process (exit 0, stored), and the
    first ends with its own status."""
    helper_runner.warm()
    first = helper_runner.popen("-d", "-s", memcached.address, "--key=/first", "-", stdin=subprocess.PIPE)
    first.stdin.write(b"one")
    first.stdin.flush()
    wait_for(lambda: first.stderr.peek(1), "the first call to begin")  # its --debug line
    first.send_signal(signal.SIGSTOP)
    first.stdin.close()  # its worker ends the call; its client, stopped, cannot hang up
    wait_for(lambda: b"/first" in dump_items(memcached), "the first call's item")
    second = helper_runner.popen("-d", "-s", memcached.address, "--key=/second", "-", stdin=subprocess.PIPE)
    assert second.stderr.readline().startswith(SERVED.encode())  # the second call runs
    first.send_signal(signal.SIGINT)
    first.send_signal(signal.SIGCONT)
    assert first.wait(timeout=300) == 0
    second.stdin.write(b"two")
    second.stdin.close()
    out, err = second.stdout.read(), second.stderr.read()  # the rest, after the line read above
    assert (second.wait(timeout=300), out, err.split(b";")[0]) == \
        (0, b"", f"memccp: debug: servers {memcached.address}".encode())
    assert dump_items(memcached) == {b"/first": (0, b"one", -1), b"/second": (0, b"two", -1)}


def test_a_worker_whose_call_is_over_is_waited_for_not_replaced():
    """No spare: a worker whose call runs gets one forked after SPARE_DELAY; a worker whose
    call is over is waited for until it is back (FINISHING_WAIT at most, then it ends)."""
    helper, worker_end = bare_helper()
    try:
        helper.spares = set()
        assert helper._fork_due(100.0) == 0.0  # no worker at all: at once
        helper.workers[WORKER] = -1
        assert helper._fork_due(100.0) == 100.0 + helper_module.SPARE_DELAY
        helper.finishing[WORKER] = 101.0
        assert helper._fork_due(100.0) == 101.0 + helper_module.FINISHING_WAIT
        helper.workers[WORKER + 1] = -1  # and another call runs
        assert helper._fork_due(100.0) == 100.0 + helper_module.SPARE_DELAY
    finally:
        helper.channel.close()
        worker_end.close()
