"""The helper serves only callers in its own world (issue 19): another network or mount
namespace, a chroot, dropped capabilities, other limits, nice value, cgroup, audit ids,
no_new_privs or seccomp: the call stores what an in-process run there would store, through
a helper of that context or in-process; another context's helper refuses it, naming the
property that differs."""

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

# --- network namespace -------------------------------------------------------------------

NS_DUMP = ("import sys; sys.path.insert(0, sys.argv[1]); from conftest import Memcached, dump_items; "
           "print(repr(dump_items(Memcached('127.0.0.1', int(sys.argv[2]), None))))")


@pytest.fixture
def netns(memcached):
    """A memcached alone in a network namespace of its own (lo up), on 127.0.0.1 and the
    port of the `memcached` fixture's; yields its process (nsenter --net=/proc/PID/ns/net)."""
    if not (UNSHARE and NSENTER and IP):
        pytest.skip("needs unshare, nsenter and ip")
    proc = subprocess.Popen([UNSHARE, "-n", "sh", "-c", f'{IP} link set lo up && exec "$0" "$@"', MEMCACHED,
                             "-l", "127.0.0.1", "-p", str(memcached.port), "-U", "0", "-u", "root"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: proc.poll() is not None or ns_items(proc.pid, memcached.port) is not None,
                 "the namespace's memcached to answer")
        if proc.poll() is not None:
            pytest.skip(f"no memcached in a new network namespace: {proc.stderr.read().decode().strip()}")
        yield proc
    finally:
        end(proc)


def ns_items(pid: int, port: int):
    """dump_items of the memcached on 127.0.0.1:PORT in the network namespace of PID (None if
    it does not answer)."""
    proc = subprocess.run([NSENTER, f"--net=/proc/{pid}/ns/net", "/usr/bin/python3", "-c", NS_DUMP, TESTS,
                           str(port)], capture_output=True, timeout=300)
    return ast.literal_eval(proc.stdout.decode()) if proc.returncode == 0 else None


@root_only
def test_network_namespace(main, memcached, netns, tmp_path):
    """Calls from another network namespace store into the memcached 127.0.0.1:PORT of that
    namespace, never into this one's on the same port: in-process first, then through that
    namespace's own helper; the helper of this namespace refuses them (net namespace differs)."""
    outside = main.warm()
    inside = Within(main.runtime, prefix=[NSENTER, f"--net=/proc/{netns.pid}/ns/net"])
    assert inside.name() != helper_name(main)
    (tmp_path / "f").write_bytes(b"netns")
    address = f"127.0.0.1:{memcached.port}"
    lines = []
    for i in range(3):
        proc = inside("-d", "-v", "-s", address, f"--key=k{i}", str(tmp_path / "f"))
        code, out, err = result(proc)
        lines.append(err.split("\n", 1)[0])
        assert (code, out, err.splitlines()[-1]) == (0, f"k{i}\n", "memccp: 1 file, 1 stored (5 bytes), 0 failed")
        if i == 0:
            own = inside.warm()
            assert own not in (None, outside)
    assert lines[0] == STARTING
    assert all(line.startswith(f"{SERVED} (pid {own}, ") for line in lines[1:]), lines
    assert ns_items(netns.pid, memcached.port) == {b"k0": (0, b"netns", -1), b"k1": (0, b"netns", -1),
                                                   b"k2": (0, b"netns", -1)}
    assert dump_items(memcached) == {}
    assert refused(inside, helper_name(main), "-s", address, "--key=stolen", str(tmp_path / "f")) == \
        [(0, "None ['net namespace differs']\n", "")] * 3
    assert b"stolen" not in ns_items(netns.pid, memcached.port) and dump_items(memcached) == {}
    assert main.helper_pid() == outside and main.served()


# --- mount namespace and chroot ----------------------------------------------------------

@root_only
def test_mount_namespace(main, memcached, tmp_path):
    """In a mount namespace where a file is bind-mounted over another, calls store the bytes
    the caller sees there: the first (in-process) and the later ones (its own helper);
    outside, the file's own bytes; this context's helper refuses (mnt namespace differs)."""
    (tmp_path / "f.txt").write_bytes(b"own bytes")
    (tmp_path / "other.txt").write_bytes(b"bind-mounted")
    hold = holder('mount --bind "$0" "$1"', str(tmp_path / "other.txt"), str(tmp_path / "f.txt"))
    try:
        outside = main.warm()
        inside = Within(main.runtime, prefix=[NSENTER, f"--mount=/proc/{hold.pid}/ns/mnt"])
        argv = ("-d", "-s", memcached.address, str(tmp_path / "f.txt"))
        first = inside(*argv, "--key=first")
        assert (first.returncode, first.stdout, first_line(first)) == (0, b"", STARTING)
        own = inside.warm()
        assert own not in (None, outside)
        later = inside(*argv, "--key=later")
        assert (later.returncode, later.stdout) == (0, b"")
        assert first_line(later).startswith(f"{SERVED} (pid {own}, ")
        here = main(*argv, "--key=here")
        assert (here.returncode, first_line(here).startswith(f"{SERVED} (pid {outside}, ")) == (0, True)
        assert refused(inside, helper_name(main), "-s", memcached.address, "--key=stolen",
                       str(tmp_path / "f.txt")) == [(0, "None ['mnt namespace differs']\n", "")] * 3
        assert dump_items(memcached) == {b"first": (0, b"bind-mounted", -1), b"later": (0, b"bind-mounted", -1),
                                         b"here": (0, b"own bytes", -1)}
    finally:
        end(hold)


@pytest.fixture
def chroot(main, tmp_path):
    """(outside, inside): runners in one new mount namespace, outside at its root, inside
    chrooted to an rbind of / where one file, f.txt, has other bytes bind-mounted over it."""
    if not (UNSHARE and NSENTER and CHROOT):
        pytest.skip("needs unshare, nsenter and chroot")
    (tmp_path / "f.txt").write_bytes(b"outside the chroot")
    (tmp_path / "other.txt").write_bytes(b"inside the chroot")
    (tmp_path / "root").mkdir()
    hold = holder('mount --rbind / "$0" && mount --bind "$1" "$0$2"', str(tmp_path / "root"),
                  str(tmp_path / "other.txt"), str(tmp_path / "f.txt"))
    try:
        enter = [NSENTER, f"--mount=/proc/{hold.pid}/ns/mnt"]
        yield Within(main.runtime, prefix=enter), Within(main.runtime, prefix=[*enter, CHROOT, str(tmp_path / "root")])
    finally:
        stop_all(main.directory)  # before the namespace goes: it holds the chroot's mounts
        end(hold)


@root_only
def test_chroot_calls_store_what_the_chroot_sees(chroot, memcached, tmp_path):
    """With the helper outside the chroot warm, calls from the chroot store what the chroot
    sees (never served by that helper); that helper refuses them: root directory differs."""
    outside, inside = chroot
    helper = outside.warm()
    path = str(tmp_path / "f.txt")
    for i in range(3):
        proc = inside("-d", "-s", memcached.address, f"--key=in{i}", path)
        assert (proc.returncode, proc.stdout) == (0, b"")
        assert not first_line(proc).startswith(f"{SERVED} (pid {helper}, "), first_line(proc)
    proc = outside("-d", "-s", memcached.address, "--key=out", path)
    assert (proc.returncode, first_line(proc).startswith(f"{SERVED} (pid {helper}, ")) == (0, True)
    assert refused(inside, helper_name(outside), "-s", memcached.address, "--key=stolen", path) == \
        [(0, "None ['root directory differs']\n", "")] * 3
    assert dump_items(memcached) == {b"in0": (0, b"inside the chroot", -1), b"in1": (0, b"inside the chroot", -1),
                                     b"in2": (0, b"inside the chroot", -1), b"out": (0, b"outside the chroot", -1)}


@root_only
def test_chroot_gets_a_helper_of_its_own(chroot, memcached, tmp_path):
    """A chroot is a context of its own: while the helper outside it runs, calls from the
    chroot get a helper of their own (started by their first call), which serves them."""
    outside, inside = chroot
    helper = outside.warm()
    assert inside.name() != outside.name(), "the chroot's helper has the name of the one outside it"
    inside("-d")
    own = wait_for(lambda: inside.served() and inside.helper_pid(), "a helper of the chroot to serve")
    assert own != helper


@root_only
def test_helper_started_in_a_chroot_serves_no_caller_outside(chroot, memcached, tmp_path):
    """A helper started by a call from a chroot never serves a caller outside the chroot
    (same mount namespace): that caller stores the bytes it sees, not the chroot's."""
    outside, inside = chroot
    path = str(tmp_path / "f.txt")
    proc = inside("-d", "-s", memcached.address, "--key=in", path)
    assert (proc.returncode, first_line(proc)) == (0, STARTING)
    chrooted = wait_for(lambda: inside.served() and inside.helper_pid(), "the chroot's helper to serve")
    proc = outside("-d", "-s", memcached.address, "--key=out", path)
    assert (proc.returncode, dump_items(memcached)) == \
        (0, {b"in": (0, b"inside the chroot", -1), b"out": (0, b"outside the chroot", -1)}), first_line(proc)
    assert not first_line(proc).startswith(f"{SERVED} (pid {chrooted}, "), first_line(proc)


# --- capabilities -----------------------------------------------------------------------------

@root_only
def test_capability_dropped(main, memcached, tmp_path):
    """Root without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH cannot read nobody's 0600 file:
    through the helper (its context's) it fails exactly as in-process under the same setpriv;
    the full-capability helper refuses such a caller (capabilities differs) and so never
    reads the file for it."""
    if not SETPRIV:
        pytest.skip("needs setpriv")
    secret, plain = tmp_path / "secret", tmp_path / "plain"
    secret.write_bytes(b"s3cret")
    plain.write_bytes(b"plain")
    os.chown(secret, 65534, 65534)
    os.chmod(secret, 0o600)
    drop = [SETPRIV, "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-dac_override,-dac_read_search"]
    argv = ("-s", memcached.address, str(secret), str(plain))
    expected = (1, "", f"memccp: {secret}: Permission denied\n")
    main.warm()
    off = Within(main.runtime, prefix=drop, mode="in-process")
    assert result(off(*argv)) == expected
    assert dump_items(memcached) == {b"plain": (0, b"plain", -1)}
    capless = Within(main.runtime, prefix=drop)
    assert capless.name() != helper_name(main)
    outcomes = []
    for served in (False, True):
        if served:
            capless.warm()
        memcached_flush(memcached)
        outcomes.append((result(capless(*argv)), dump_items(memcached)))
    assert outcomes == [(expected, {b"plain": (0, b"plain", -1)})] * 2
    assert refused(capless, helper_name(main), "-s", memcached.address, "--key=stolen", str(secret)) == \
        [(0, "None ['capabilities differs']\n", "")] * 3
    assert text_get(memcached, b"stolen") is None
    assert result(main(*argv)) == (0, "", "")  # with every capability, root reads it
    assert text_get(memcached, b"secret") == (0, b"s3cret")


# --- resource limits, nice value, cgroup, audit ids, no_new_privs, seccomp, namespaces --------

def _limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lower = min(soft, 512) - 1
    return lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (lower, lower))


def _nice():
    return lambda: os.nice(5)


def _loginuid():
    with open("/proc/self/loginuid") as loginuid:
        uid = "4243" if loginuid.read().strip() == "4242" else "4242"
    check = subprocess.run(["sh", "-c", f"echo {uid} > /proc/self/loginuid"], capture_output=True, timeout=300)
    if check.returncode != 0:
        pytest.skip(f"cannot set the audit login uid: {check.stderr.decode().strip()}")

    def preexec():
        with open("/proc/self/loginuid", "w") as loginuid:
            loginuid.write(uid)
    return preexec


def _seccomp():
    """An allow-all seccomp filter (as root: no no_new_privs needed)."""
    libc = ctypes.CDLL(None, use_errno=True)

    class Filter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint)]

    class Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(Filter))]

    allow = (Filter * 1)(Filter(0x06, 0, 0, 0x7FFF0000))  # BPF_RET|BPF_K, SECCOMP_RET_ALLOW
    program = Program(1, allow)
    pr_set_seccomp, seccomp_mode_filter = 22, 2

    def preexec():
        if libc.prctl(pr_set_seccomp, seccomp_mode_filter, ctypes.byref(program), 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP)")
    preexec.keep = (allow, program)
    return preexec


@pytest.fixture
def cgroup():
    """A child cgroup of a v1 controller of this test's own (its processes are ended and it
    is removed afterwards); yields its cgroup.procs."""
    made = None
    for controller in ("cpu", "pids", "cpuacct", "blkio", "freezer"):
        path = f"/sys/fs/cgroup/{controller}/memccp-test-{uuid.uuid4().hex[:12]}"
        try:
            os.mkdir(path)
        except OSError:
            continue
        made = path
        break
    if made is None:
        pytest.skip("cannot make a child cgroup under /sys/fs/cgroup")
    procs = os.path.join(made, "cgroup.procs")
    try:
        yield procs
    finally:
        def members():
            with open(procs) as handle:
                return [int(pid) for pid in handle.read().split()]

        # only processes of this test are in it: the helper it started there, its worker
        for signum in (signal.SIGTERM, signal.SIGKILL):
            for pid in members():
                try:
                    os.kill(pid, signum)
                except ProcessLookupError:
                    pass
            try:
                wait_for(lambda: not members(), f"{made} to be left")
                break
            except AssertionError:
                continue

        def removed():
            try:
                os.rmdir(made)
                return True
            except OSError as exc:
                return exc.errno == errno.ENOENT
        wait_for(removed, f"{made} to be removed")


def _into(procs):
    def preexec():
        with open(procs, "w") as handle:
            handle.write(str(os.getpid()))
    return preexec


PERSISTENT = [  # (id, the property, prefix, preexec maker): each call has the same context
    ("limits", "resource limits", [], _limit),
    ("nice", "nice value", [], _nice),
    ("cgroup", "cgroup", [], "cgroup"),
    ("no_new_privs", "no_new_privs", [SETPRIV, "--no-new-privs"], None),
    ("seccomp", "seccomp", [], _seccomp),
]
PER_CALL = [  # each call another context: a new namespace, or a new audit session
    ("pid", "pid namespace", [UNSHARE, "--pid", "--fork"], None),
    ("user", "user namespace", [UNSHARE, "--user", "--map-root-user"], None),
    ("uts", "uts namespace", [UNSHARE, "--uts"], None),
    ("ipc", "ipc namespace", [UNSHARE, "--ipc"], None),
    ("cgroupns", "cgroup namespace", [UNSHARE, "--cgroup"], None),
    ("time", "time namespace", [UNSHARE, "--time", "--fork"], None),
    ("loginuid", "audit login uid", [], _loginuid),  # (each write starts a new audit session)
]


@root_only
@pytest.mark.parametrize("what, prefix, make", [p[1:] for p in PERSISTENT], ids=[p[0] for p in PERSISTENT])
def test_other_context_served_by_its_own_helper(request, main, memcached, tmp_path, what, prefix, make):
    """A caller whose PROPERTY differs stores correctly, in-process first, then through a
    helper of its own context; this context's helper refuses it ('PROPERTY differs')."""
    if None in prefix:
        pytest.skip("needs util-linux's unshare and setpriv")
    preexec = _into(request.getfixturevalue("cgroup")) if make == "cgroup" else make() if make else None
    helper = main.warm()
    other = Within(main.runtime, prefix=prefix, preexec=preexec)
    assert other.name() != helper_name(main)
    (tmp_path / "f").write_bytes(b"context")
    first = other("-d", "-v", "-s", memcached.address, "--key=first", str(tmp_path / "f"))
    assert (first.returncode, first.stdout, first_line(first)) == (0, b"first\n", STARTING)
    own = other.warm()
    assert own not in (None, helper)
    later = other("-d", "-v", "-s", memcached.address, "--key=later", str(tmp_path / "f"))
    assert (later.returncode, later.stdout) == (0, b"later\n")
    assert first_line(later).startswith(f"{SERVED} (pid {own}, ")
    assert dump_items(memcached) == {b"first": (0, b"context", -1), b"later": (0, b"context", -1)}
    assert main.helper_pid() == helper
    assert refused(other, helper_name(main), "-s", memcached.address, "--key=stolen", str(tmp_path / "f")) == \
        [(0, f"None ['{what} differs']\n", "")] * 3
    assert text_get(memcached, b"stolen") is None


@root_only
@pytest.mark.parametrize("what, prefix, make", [p[1:] for p in PER_CALL], ids=[p[0] for p in PER_CALL])
def test_other_context_refused(main, memcached, tmp_path, what, prefix, make):
    """A caller in another pid/user/uts/ipc/cgroup/time namespace or audit session: its call stores
    correctly (in-process, its context's first); this context's helper refuses it
    ('PROPERTY differs')."""
    if None in prefix:
        pytest.skip("needs util-linux's unshare and setpriv")
    if "--time" in prefix and not os.path.exists("/proc/self/ns/time"):
        pytest.skip("no time namespaces")
    helper = main.warm()
    other = Within(main.runtime, prefix=prefix, preexec=make() if make else None)
    (tmp_path / "f").write_bytes(b"namespace")
    proc = other("-d", "-v", "-s", memcached.address, "--key=k", str(tmp_path / "f"))
    if proc.returncode != 0 and b"unshare failed" in proc.stderr:
        pytest.skip(proc.stderr.decode().strip())
    assert (proc.returncode, proc.stdout, first_line(proc)) == (0, b"k\n", STARTING)
    assert dump_items(memcached) == {b"k": (0, b"namespace", -1)}
    assert main.helper_pid() == helper
    assert refused(other, helper_name(main), "-s", memcached.address, "--key=stolen", str(tmp_path / "f")) == \
        [(0, f"None ['{what} differs']\n", "")] * 3
    assert text_get(memcached, b"stolen") is None
