"""bin/memccp as a process: the same behaviour in-process (MEMCCP_HELPER=off) and through the
warm helper, and the helper's own faults (stale socket, killed helper or worker, two loops,
another user, changed code, idle exit). Each test has its own runtime directory."""

import os
import pathlib
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time

import pytest

from conftest import dump_items, text_get
from helpers import ctrl_c_once_blocked, wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "bin", "memccp")
SERVED = "memccp: debug: run by the warm helper"


def alive(pid: int) -> bool:
    """PID runs (a zombie that nobody reaped does not count)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


class Memccp:
    """Runs a checkout's bin/memccp with the helper on or off and a private runtime dir."""

    def __init__(self, mode: str, runtime, root: str = ROOT, idle: str = "60") -> None:
        self.mode, self.runtime, self.root = mode, str(runtime), root
        self.bin = os.path.join(root, "bin", "memccp")
        self.base_env = {"PATH": "/usr/bin:/bin", "XDG_RUNTIME_DIR": self.runtime,
                         "MEMCCP_HELPER": "on" if mode == "helper" else "off",
                         "MEMCCP_HELPER_IDLE": idle}

    @property
    def directory(self) -> str:
        return os.path.join(self.runtime, "memccp")

    def path(self, what: str) -> str:
        """The helper's "socket" or "lock" of the context that came first (this process's),
        named after the installation, as the client names it."""
        st = os.stat(os.path.join(self.root, "memccp_py", "warm"))
        return os.path.join(self.directory, f"{what}.{st.st_dev:x}-{st.st_ino:x}")

    def env(self, **extra) -> dict:
        return dict(self.base_env, **extra)

    def __call__(self, *argv, env=None, **kwargs) -> subprocess.CompletedProcess:
        if "stdout" not in kwargs and "stderr" not in kwargs:
            kwargs["capture_output"] = True
        return subprocess.run([self.bin, *argv], env=env or self.env(), timeout=300, **kwargs)

    def popen(self, *argv, **kwargs) -> subprocess.Popen:
        return subprocess.Popen([self.bin, *argv], env=self.env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, **kwargs)

    def helper_pid(self):
        """The pid of the running helper, or None."""
        try:
            with open(self.path("lock")) as lock:
                pid = int(lock.read() or 0)
        except (OSError, ValueError):
            return None
        return pid if pid and alive(pid) else None

    def served(self) -> bool:
        """A call (-d, no files: a usage error) was run by the helper."""
        return SERVED in self("-d").stderr.decode()

    def warm(self) -> int:
        """Wait until a helper serves calls; return its pid."""
        wait_for(self.served, "a helper to serve a call")
        return self.helper_pid()

    def stop(self) -> None:
        pid = self.helper_pid()
        if pid:
            os.kill(pid, signal.SIGTERM)
            wait_for(lambda: not alive(pid), f"helper {pid} to end")


def runtime_dir(path):
    path.mkdir(mode=0o700)
    return path


@pytest.fixture(params=["in-process", "helper"])
def memccp(request, tmp_path):
    """bin/memccp run in-process or through a warm helper (then already serving)."""
    runner = Memccp(request.param, runtime_dir(tmp_path / "run"))
    if request.param == "helper":
        runner.warm()
    yield runner
    runner.stop()


@pytest.fixture
def helper_runner(tmp_path):
    """bin/memccp with the helper on, none started yet."""
    runner = Memccp("helper", runtime_dir(tmp_path / "run"))
    yield runner
    runner.stop()


def result(proc) -> tuple:
    out, err = proc.stdout, proc.stderr
    return proc.returncode, out.decode() if out is not None else None, err.decode() if err is not None else None


# --- the same behaviour either way -----------------------------------------------------------

def test_store_with_key(memccp, memcached, tmp_path):
    """--key -v: the key on stdout, the summary on stderr, exit 0, the bytes stored under the key."""
    data = bytes(range(256)) * 3
    (tmp_path / "a.gif").write_bytes(data)
    proc = memccp("-v", "--key=/img/a.gif", "-F", "7", "-s", memcached.address, str(tmp_path / "a.gif"))
    assert result(proc) == (0, "/img/a.gif\n", "memccp: 1 file, 1 stored (768 bytes), 0 failed\n")
    assert text_get(memcached, b"/img/a.gif") == (7, data)


def test_usage_error(memccp, memcached, tmp_path):
    """A usage error: one line, exit 2, nothing stored."""
    proc = memccp("--key=k", "-s", memcached.address, "a", "b")
    assert result(proc) == (2, "", "memccp: --key names one file, 2 given\n")
    assert text_get(memcached, b"k") is None


def test_missing_file(memccp, memcached, tmp_path):
    """A missing file is named, the other one stored, exit 1."""
    (tmp_path / "there").write_bytes(b"x")
    proc = memccp("-s", memcached.address, str(tmp_path / "gone"), str(tmp_path / "there"))
    assert result(proc) == (1, "", f"memccp: {tmp_path / 'gone'}: No such file or directory\n")
    assert text_get(memcached, b"there") == (0, b"x")


def test_version_and_help(memccp):
    """--version and --help (as wide as $COLUMNS says) on stdout, exit 0."""
    code, out, err = result(memccp("--version"))
    assert (code, err) == (0, "") and out.startswith("memccp v") and "memccp-py" in out
    code, out, err = result(memccp("--help", env=memccp.env(COLUMNS="50")))
    assert (code, err) == (0, "") and out.startswith("usage: memccp")
    assert max(map(len, out.splitlines())) <= 50


def test_names_from_stdin_relative_to_cwd(memccp, memcached, tmp_path):
    """--files-from=- reads names from stdin; relative names are the caller's working directory's."""
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "one").write_bytes(b"1")
    (tmp_path / "d" / "two").write_bytes(b"2")
    proc = memccp("--relative", "-s", memcached.address, "--files-from=-", input=b"d/one\nd/two\n",
                  cwd=tmp_path)
    assert result(proc) == (0, "", "")
    assert (text_get(memcached, b"d/one"), text_get(memcached, b"d/two")) == ((0, b"1"), (0, b"2"))


def test_environment(memccp, memcached, tmp_path):
    """MEMCACHED_SERVERS is the server list; MEMCACHED_PASSWORD counts with --username."""
    (tmp_path / "f").write_bytes(b"env")
    proc = memccp("-u", "bob", str(tmp_path / "f"), env=memccp.env(MEMCACHED_SERVERS=memcached.address))
    assert result(proc) == (2, "", "memccp: SASL needs both --username and a password "
                                   "(--password, --password-file or MEMCACHED_PASSWORD)\n")
    assert text_get(memcached, b"f") is None
    proc = memccp("-u", "bob", str(tmp_path / "f"),
                  env=memccp.env(MEMCACHED_SERVERS=memcached.address, MEMCACHED_PASSWORD="pw"))
    assert result(proc) == (0, "", "")
    assert text_get(memcached, b"f") == (0, b"env")


def test_non_utf8_name(memccp, memcached, tmp_path):
    """A file name that is not UTF-8 is stored under its very bytes."""
    name = b"caf\xe9.txt"
    with open(os.path.join(os.fsencode(tmp_path), name), "wb") as handle:
        handle.write(b"latin-1")
    proc = memccp("-s", memcached.address, os.path.join(os.fsencode(tmp_path), name))
    assert result(proc) == (0, "", "")
    assert text_get(memcached, name) == (0, b"latin-1")


@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, -signal.SIGTERM)])
def test_signal_while_reading_names(memccp, memcached, tmp_path, signum, status):
    """Ctrl-C while waiting for names: 'interrupted', exit 130; SIGTERM ends it as a signal does."""
    fifo = tmp_path / "names"
    os.mkfifo(fifo)
    proc = memccp.popen("-s", memcached.address, f"--files-from={fifo}")
    with open(fifo, "w"):  # returns once the run has opened the fifo: it is waiting for names
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=300)  # a hang guard: it ends at once
    expected_err = b"memccp: interrupted\n" if signum == signal.SIGINT else b""
    assert (proc.returncode, out, err) == (status, b"", expected_err)
    assert dump_items(memcached) == {}


#: bin/memccp's client (argv: checkout, then memccp's), with a thread that, once it reads a
#: byte on descriptor CONTROL (the environment says which), sends SIGINT to itself: the
#: handler (which passes the signal on to the worker) is due without the main thread's wait
#: being interrupted, as with a Ctrl-C that comes just before the client begins to wait.
CLIENT_ASIDE = """
import os, signal, sys, threading
root = sys.argv.pop(1)
sys.path[0:0] = [root + "/memccp_py/warm", root]
from client import main

def deliver():
    os.read(int(os.environ["CONTROL"]), 1)
    signal.pthread_kill(threading.get_ident(), signal.SIGINT)

threading.Thread(target=deliver, daemon=True).start()
sys.exit(main())
"""


def test_ctrl_c_that_does_not_interrupt_the_clients_wait(helper_runner, memcached, tmp_path):
    """A Ctrl-C due while the client already waits for the worker's status, its wait not
    interrupted: it still reaches the worker, and the call ends at once, 'interrupted',
    exit 130, nothing stored."""
    helper_runner.warm()
    command = ["/usr/bin/python3", "-IS", "-c", CLIENT_ASIDE, ROOT, "-s", memcached.address]
    outcome = ctrl_c_once_blocked(command, helper_runner.env(), tmp_path / "names",
                                 "the client to wait for the status")
    assert outcome == (130, b"", b"memccp: interrupted\n")
    assert dump_items(memcached) == {}


def state(pid: int) -> str:
    with open(f"/proc/{pid}/stat", "rb") as handle:
        return handle.read().rsplit(b")", 1)[1].split()[0].decode()


def test_ctrl_z(memccp, memcached, tmp_path):
    """Ctrl-Z (SIGTSTP) stops the call, worker and all; SIGCONT resumes it; it ends normally."""
    fifo = tmp_path / "names"
    os.mkfifo(fifo)
    (tmp_path / "f").write_bytes(b"z")
    # its own process group, in this session: never an orphaned one, whose stop signals the
    # kernel drops (as when the tests run from a shell that has gone away)
    proc = memccp.popen("-d", "-s", memcached.address, f"--files-from={fifo}", preexec_fn=os.setpgrp)
    with open(fifo, "w") as names:
        line = proc.stderr.readline().decode()
        running = [proc.pid]
        if memccp.mode == "helper":
            assert line.startswith(SERVED), line
            running.append(int(line.rsplit(" ", 1)[1].rstrip(")\n")))
        proc.send_signal(signal.SIGTSTP)
        for pid in running:
            wait_for(lambda: state(pid) == "T", f"process {pid} to stop")
        proc.send_signal(signal.SIGCONT)
        for pid in running:
            wait_for(lambda: state(pid) != "T", f"process {pid} to go on")
        names.write(f"{tmp_path / 'f'}\n")
    proc.wait(timeout=300)
    assert proc.returncode == 0
    assert text_get(memcached, b"f") == (0, b"z")


def test_reader_leaves(memccp, memcached, tmp_path):
    """-v into a pipe whose reader has left (| head): every file stored, no error, exit 0."""
    paths = []
    for i in range(200):
        (tmp_path / f"p{i}").write_bytes(b"%d" % i)
        paths.append(str(tmp_path / f"p{i}"))
    reader = subprocess.Popen(["true"], stdin=subprocess.PIPE)
    reader.wait()
    proc = memccp("-v", "-s", memcached.address, *paths, stdout=reader.stdin, stderr=subprocess.PIPE)
    reader.stdin.close()
    assert (proc.returncode, proc.stderr) == (0, b"memccp: 200 files, 200 stored (490 bytes), 0 failed\n")
    assert text_get(memcached, b"p199") == (0, b"199")


# --- closed descriptors: exactly what an in-process run does -----------------------------------

def _closed(runner, fd: int, *argv):
    """Run with descriptor FD closed (as the shell's N>&-); return (status, stdout, stderr)."""
    streams = {0: "stdin", 1: "stdout", 2: "stderr"}
    kwargs = {"stdin": subprocess.DEVNULL, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    del kwargs[streams[fd]]
    proc = subprocess.run(["sh", "-c", f'exec "$0" "$@" {fd}>&-', runner.bin, *argv], env=runner.env(),
                          timeout=300, **kwargs)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.mark.parametrize("fd", [0, 1, 2])
def test_closed_descriptor_as_in_process(memcached, tmp_path, fd):
    """With 0, 1 or 2 closed the helper's run ends as the in-process run does (status, output,
    last line of errors, stored items): the worker sees the same descriptor closed."""
    (tmp_path / "f").write_bytes(b"closed")
    argv = ["-v", "-s", memcached.address, str(tmp_path / "f")] + (["--files-from=-"] if fd == 0 else [])
    outcomes = {}
    for mode in ("in-process", "helper"):
        runner = Memccp(mode, runtime_dir(tmp_path / f"run-{mode}"))
        try:
            if mode == "helper":
                runner.warm()
            memcached_flush = socket.create_connection((memcached.host, memcached.port))
            memcached_flush.sendall(b"flush_all\r\n")
            assert memcached_flush.recv(10) == b"OK\r\n"
            memcached_flush.close()
            code, out, err = _closed(runner, fd, *argv)
            last = err.splitlines()[-1:] if err else None
            outcomes[mode] = (code, out, last, text_get(memcached, b"f"))
            if mode == "helper":
                assert runner.served()  # still the same helper, serving
        finally:
            runner.stop()
    assert outcomes["helper"] == outcomes["in-process"]


# --- the helper's own faults -------------------------------------------------------------------

def test_debug_says_how_the_call_ran(helper_runner, tmp_path):
    """--debug: in-process when off or while no helper runs, then 'run by the warm helper'."""
    off = helper_runner("-d", env=helper_runner.env(MEMCCP_HELPER="off"))
    assert off.stderr.decode().splitlines()[0] == "memccp: debug: run in-process (MEMCCP_HELPER=off)"
    assert not os.path.exists(helper_runner.path("socket"))
    first = helper_runner("-d")
    assert first.stderr.decode().splitlines()[0] == \
        "memccp: debug: run in-process (no helper took the call; one is starting)"
    pid = helper_runner.warm()
    line = helper_runner("-d").stderr.decode().splitlines()[0]
    assert line.startswith(f"{SERVED} (pid {pid}, worker ") and line.endswith(")")
    assert stat.S_IMODE(os.stat(helper_runner.directory).st_mode) == 0o700


def test_unsafe_directory_means_in_process(tmp_path):
    """A socket directory that others may enter is not used: the call runs in-process."""
    runner = Memccp("helper", runtime_dir(tmp_path / "run"))
    os.mkdir(runner.directory, 0o755)
    os.chmod(runner.directory, 0o755)
    proc = runner("-d")
    assert proc.stderr.decode().splitlines()[0] == \
        "memccp: debug: run in-process (no private directory for the helper's socket)"
    assert os.listdir(runner.directory) == []


def test_stale_socket(helper_runner, memcached, tmp_path):
    """A socket left by a dead helper: the call runs in-process, a new helper replaces it."""
    os.mkdir(helper_runner.directory, 0o700)
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(helper_runner.path("socket"))
    stale.close()
    (tmp_path / "f").write_bytes(b"stale")
    proc = helper_runner("-s", memcached.address, str(tmp_path / "f"))
    assert result(proc) == (0, "", "")
    assert text_get(memcached, b"f") == (0, b"stale")
    helper_runner.warm()


def test_helper_killed_mid_request(helper_runner, memcached, tmp_path):
    """The helper killed while a call runs: the call still ends normally; the next call works."""
    helper = helper_runner.warm()
    fifo = tmp_path / "names"
    os.mkfifo(fifo)
    (tmp_path / "f").write_bytes(b"mid")
    proc = helper_runner.popen("-v", "-s", memcached.address, f"--files-from={fifo}")
    with open(fifo, "w") as names:  # the worker has the fifo open: the call is under way
        os.kill(helper, signal.SIGKILL)
        wait_for(lambda: not alive(helper), "the helper to die")
        names.write(f"{tmp_path / 'f'}\n")
    out, err = proc.communicate(timeout=300)
    assert (proc.returncode, out, err) == (0, b"f\n", b"memccp: 1 file, 1 stored (3 bytes), 0 failed\n")
    assert text_get(memcached, b"f") == (0, b"mid")
    assert result(helper_runner("-s", memcached.address, str(tmp_path / "f")))[0] == 0
    helper_runner.warm()


def test_worker_killed_mid_request(helper_runner, memcached, tmp_path):
    """The worker killed during a call: the client ends by the same signal, the call is not rerun."""
    helper_runner.warm()
    fifo = tmp_path / "names"
    os.mkfifo(fifo)
    proc = helper_runner.popen("-d", "-s", memcached.address, f"--files-from={fifo}")
    with open(fifo, "w"):
        line = proc.stderr.readline().decode()
        assert line.startswith(SERVED), line
        worker = int(line.rsplit(" ", 1)[1].rstrip(")\n"))
        os.kill(worker, signal.SIGKILL)
        proc.wait(timeout=300)
    assert proc.returncode == -signal.SIGKILL
    assert helper_runner.served()


def test_two_loops_at_once(helper_runner, memcached, tmp_path):
    """Two loops calling memccp at the same time: every call exits 0 and stores its own file."""
    helper_runner.warm()
    results = {}

    def loop(name: str) -> None:
        for i in range(12):
            path = tmp_path / f"{name}{i}"
            path.write_bytes(f"{name}-{i}".encode())
            results[(name, i)] = result(helper_runner(f"--key=/{name}/{i}", "-s", memcached.address, str(path)))

    threads = [threading.Thread(target=loop, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert set(results.values()) == {(0, "", "")} and len(results) == 24
    for name, i in results:
        assert text_get(memcached, f"/{name}/{i}".encode()) == (0, f"{name}-{i}".encode())


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a process as nobody")
def test_other_user_refused(memcached):
    """A process of another user that reaches the helper's socket is not served."""
    top = tempfile.mkdtemp()
    try:
        os.chmod(top, 0o755)
        for part in ("bin", "memccp_py"):
            shutil.copytree(os.path.join(ROOT, part), os.path.join(top, part),
                            ignore=shutil.ignore_patterns("__pycache__"))
        runner = Memccp("helper", runtime_dir(pathlib.Path(top) / "run"), root=top)
        try:
            runner.warm()
            for path in (runner.runtime, runner.directory):  # let nobody reach the socket
                os.chmod(path, 0o711)
            os.chmod(runner.path("socket"), 0o777)
            code = ("import sys; sys.path.insert(0, sys.argv.pop(1)); from memccp_py.warm import client; "
                    "why = []; print(client.via_helper(sys.argv.pop(1).encode(), "
                    "sys.argv.pop(1).encode(), why), [reason for _, reason in why])")
            proc = subprocess.run(
                ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "/usr/bin/python3",
                 "-IS", "-c", code, top, runner.directory,
                 os.path.basename(runner.path("socket"))[len("socket."):],
                 "-s", memcached.address, "--key=stolen", "/etc/hostname"],
                env={"PATH": "/usr/bin:/bin"}, capture_output=True, timeout=300)
            assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"None []\n", b"")
            assert text_get(memcached, b"stolen") is None
            for path in (runner.runtime, runner.directory):
                os.chmod(path, 0o700)
            assert runner.served()  # root's own calls still are
        finally:
            runner.stop()
    finally:
        shutil.rmtree(top)


def test_code_changed_under_running_helper(tmp_path):
    """A module changed under a running helper: the next call runs in-process, a new helper
    (running the new code) takes over."""
    for part in ("bin", "memccp_py"):
        shutil.copytree(os.path.join(ROOT, part), tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
    runner = Memccp("helper", runtime_dir(tmp_path / "run"), root=str(tmp_path))
    try:
        old = runner.warm()
        module = tmp_path / "memccp_py" / "choices.py"
        module.write_text(module.read_text() + "\n# a new version\n")
        lines = runner("-d").stderr.decode().splitlines()
        assert lines[0] == "memccp: debug: run in-process (no helper took the call; one is starting)"
        wait_for(lambda: not alive(old), "the old helper to leave")
        new = runner.warm()
        assert new != old
    finally:
        runner.stop()


def test_idle_exit(tmp_path):
    """With MEMCCP_HELPER_IDLE=0.5 the helper (named memccp-helper) leaves soon after its
    last call, removing its socket and its lock: nothing is left in the directory."""
    runner = Memccp("helper", runtime_dir(tmp_path / "run"), idle="0.5")
    try:
        pid = runner.warm()
        with open(f"/proc/{pid}/comm") as comm:
            assert comm.read() == "memccp-helper\n"
        wait_for(lambda: not alive(pid), "the idle helper to leave")
        wait_for(lambda: not os.listdir(runner.directory), "its files to go")
    finally:
        runner.stop()


def test_idle_time_is_capped(tmp_path):
    """MEMCCP_HELPER_IDLE asks for at most 60 seconds; nonsense is the default, 5."""
    from memccp_py.warm.helper import DEFAULT_IDLE, MAX_IDLE, Helper

    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(tmp_path / "s"))
    try:
        for asked, idle in (("86400", MAX_IDLE), ("nan", DEFAULT_IDLE), ("-1", 0.0), ("2.5", 2.5)):
            os.environ["MEMCCP_HELPER_IDLE"] = asked
            assert Helper(listener, str(tmp_path / "s"), -1, str(tmp_path / "lock")).idle == idle, asked
    finally:
        os.environ.pop("MEMCCP_HELPER_IDLE", None)
        listener.close()


def test_system_switch_turns_the_helper_off(tmp_path, monkeypatch):
    """helper=off in /etc/memccp-py/helper runs every call in-process, whatever MEMCCP_HELPER
    says; helper=on there, or no such file, leaves it to MEMCCP_HELPER."""
    from memccp_py.warm import client

    switch = tmp_path / "helper"
    monkeypatch.setattr(client, "SYSTEM_SWITCH", os.fsencode(switch))
    monkeypatch.delenv("MEMCCP_HELPER", raising=False)
    assert client.switched_off() is None  # no file
    switch.write_text("# comment\nhelper=on\n")
    assert client.switched_off() is None
    switch.write_text("# the admin's choice\nhelper = off\n")
    assert client.switched_off() == os.fsencode(switch) + b" says helper=off"
    switch.write_text("helper=on\n")
    monkeypatch.setitem(client.posix.environ, b"MEMCCP_HELPER", b"off")
    assert client.switched_off() == b"MEMCCP_HELPER=off"


def test_helper_keeps_no_secret_of_the_first_call(helper_runner, memcached, tmp_path):
    """The helper started by a call with a password carries neither its arguments nor its
    environment (MEMCACHED_PASSWORD) in its own /proc entries."""
    (tmp_path / "f").write_bytes(b"x")
    first = helper_runner("-u", "bob", "-p", "hunter2-arg", "-s", memcached.address, str(tmp_path / "f"),
                          env=helper_runner.env(MEMCACHED_PASSWORD="hunter2-env"))
    assert result(first) == (0, "", "")
    pid = helper_runner.warm()
    with open(f"/proc/{pid}/cmdline", "rb") as cmdline, open(f"/proc/{pid}/environ", "rb") as environ:
        seen = cmdline.read() + environ.read()
    assert b"hunter2" not in seen and b"MEMCACHED_PASSWORD" not in seen


def test_broken_helper_hangs_up(helper_runner, memcached, tmp_path):
    """Something on the socket that hangs up without accepting the call: the call runs
    in-process, once, and a real helper takes the socket over."""
    os.mkdir(helper_runner.directory, 0o700)
    broken = socket.socket(socket.AF_UNIX)
    broken.bind(helper_runner.path("socket"))
    broken.listen(8)
    hang_up = threading.Thread(target=lambda: broken.accept()[0].close())
    hang_up.start()
    (tmp_path / "f").write_bytes(b"once")
    try:
        proc = helper_runner("-v", "-d", "--add", "-s", memcached.address, str(tmp_path / "f"))
    finally:
        hang_up.join(300)
        broken.close()
    lines = proc.stderr.decode().splitlines()
    assert (proc.returncode, proc.stdout, lines[0], lines[-1]) == (
        0, b"f\n", "memccp: debug: run in-process (no helper took the call; one is starting)",
        "memccp: 1 file, 1 stored (4 bytes), 0 failed")
    assert text_get(memcached, b"f") == (0, b"once")
    helper_runner.warm()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to change a process's groups")
def test_same_user_other_groups_refused(helper_runner, memcached):
    """A process of the same uid and gid but other supplementary groups is not served."""
    helper_runner.warm()
    groups = ",".join(str(g) for g in sorted(set(os.getgroups()) ^ {4242}))
    code = ("import sys; sys.path.insert(0, sys.argv.pop(1)); from memccp_py.warm import client; "
            "why = []; print(client.via_helper(sys.argv.pop(1).encode(), "
            "sys.argv.pop(1).encode(), why), [reason for _, reason in why])")
    proc = subprocess.run(
        ["setpriv", f"--groups={groups}", "/usr/bin/python3", "-IS", "-c", code, ROOT,
         helper_runner.directory, os.path.basename(helper_runner.path("socket"))[len("socket."):],
         "-s", memcached.address, "--key=grouped", "/etc/hostname"],
        env={"PATH": "/usr/bin:/bin"}, capture_output=True, timeout=300)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"None ['groups differs']\n", b"")
    assert text_get(memcached, b"grouped") is None
    assert helper_runner.served()


@pytest.mark.parametrize("use_inotify", [True, False], ids=["inotify", "snapshot"])
@pytest.mark.parametrize("change", ["append", "replace", "new-file", "touch"])
def test_code_watch(tmp_path, use_inotify, change):
    """CodeWatch says "changed" once a watched file is written, replaced or touched, or a
    file appears in a watched directory; not before."""
    from memccp_py.warm.codewatch import CodeWatch

    module = tmp_path / "module.py"
    module.write_text("x = 1\n")
    for path in (module, tmp_path):  # old times: a change within the clock's tick still shows
        os.utime(path, ns=(10**18, 10**18))
    watch = CodeWatch([str(tmp_path), str(module)], use_inotify=use_inotify)
    try:
        assert (watch.fileno() is not None) == use_inotify
        assert not watch.changed()
        if change == "append":
            with open(module, "a") as handle:
                handle.write("y = 2\n")
        elif change == "replace":
            (tmp_path / "new.py").write_text("x = 1\n")
            os.utime(tmp_path / "new.py", ns=(10**18, 10**18))
            os.rename(tmp_path / "new.py", module)
        elif change == "new-file":
            (tmp_path / "other.py").write_text("")
        else:
            os.utime(module)
        assert watch.changed()
    finally:
        watch.close()


@pytest.mark.parametrize("use_inotify", [True, False], ids=["inotify", "snapshot"])
def test_code_watch_sees_the_interpreter_link_pointed_elsewhere(tmp_path, use_inotify):
    """The link that named the interpreter (/usr/bin/python3) made to name another one."""
    from memccp_py.warm.codewatch import CodeWatch

    for name in ("python3.11", "python3.12"):
        (tmp_path / name).write_bytes(name.encode())
    link = tmp_path / "python3"
    link.symlink_to("python3.11")
    watch = CodeWatch([str(link), str(tmp_path / "python3.11")], use_inotify=use_inotify)
    try:
        assert not watch.changed()
        (tmp_path / "new").symlink_to("python3.12")
        os.rename(tmp_path / "new", link)  # as ln -sfn does
        assert watch.changed()
    finally:
        watch.close()


@pytest.mark.parametrize("use_inotify", [True, False], ids=["inotify", "snapshot"])
def test_code_watch_sees_a_change_made_before_it_was_started(tmp_path, use_inotify):
    """A module changed after the helper began but before its watch was in place."""
    from memccp_py.warm.codewatch import CodeWatch

    module = tmp_path / "module.py"
    module.write_text("x = 1\n")
    began = time.time_ns() - 10**9
    watch = CodeWatch([str(module)], use_inotify=use_inotify, since_ns=began)
    try:
        assert watch.changed()
    finally:
        watch.close()
    old = time.time_ns() - 3600 * 10**9
    os.utime(module, ns=(old, old))  # (the change time is now: it cannot be set back)
    watch = CodeWatch([str(module)], use_inotify=use_inotify, since_ns=time.time_ns() + 10**9)
    try:
        assert not watch.changed()
    finally:
        watch.close()


def test_call_accepted_but_never_given_the_go_never_runs(helper_runner, memcached, tmp_path):
    """A client that answers the worker's acceptance with anything but its go (and stays
    connected, so the helper does not kill the worker for a client gone): the worker
    (which has meanwhile become the caller) runs nothing; the next call is served."""
    helper_runner.warm()
    (tmp_path / "f").write_bytes(b"walked away")
    code = """
import array, os, socket, sys
sys.path.insert(0, sys.argv.pop(1))
from memccp_py.warm import client
path = sys.argv.pop(1)
sock = socket.socket(socket.AF_UNIX)
sock.connect(path)
body = client.request_body()
fds = [os.open(".", os.O_PATH | os.O_DIRECTORY)] + [fd for fd in (0, 1, 2) if client.STDIO_OPEN[fd] == "1"]
sock.sendmsg([len(body).to_bytes(4, "big") + body],
             [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())])
print(sock.recv(64).decode().strip(), flush=True)
sock.sendall(b"N")  # no go
print(repr(sock.recv(64)))  # what the worker says before it ends (the helper then closes)
sock.close()
"""
    proc = subprocess.run(["/usr/bin/python3", "-IS", "-c", code, ROOT, helper_runner.path("socket"),
                           "-s", memcached.address, "--key=walked", str(tmp_path / "f")],
                          capture_output=True, timeout=300)
    accepted, said = proc.stdout.decode().splitlines()
    assert (proc.returncode, proc.stderr, accepted[:1], said) == (0, b"", "A", "b''")
    worker = int(accepted[1:])
    wait_for(lambda: not alive(worker), "the worker to end")
    assert text_get(memcached, b"walked") is None
    assert helper_runner.served()
