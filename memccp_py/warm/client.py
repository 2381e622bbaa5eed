"""The thin client behind bin/memccp: it loads only modules built into the interpreter
(posix, not even os; no site, no bmemcached) and hands the call (arguments, environment,
umask, working directory, standard descriptors) to the warm helper of the same user
(memccp_py/warm/helper.py), then exits with the status the helper reports. When there is no
helper it starts one in the background and runs the call itself, in-process, as it does
every call the helper did not accept. MEMCCP_HELPER=off: always in-process.
"""

import posix
import sys

import _signal
import _socket
import select

STDIO_OPEN = "".join("1" if stream is not None else "0"
                     for stream in (sys.stdin, sys.stdout, sys.stderr))  # as at start-up
PROTOCOL = b"memccp-helper-1"
ACCEPT_TIMEOUT = 5.0  # seconds a helper may take to accept before this call runs in-process
FORWARDED = (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP)
ORIGINAL = {signum: _signal.getsignal(signum) for signum in FORWARDED}  # as at start-up
SYSTEM_SWITCH = b"/etc/memccp-py/helper"
PENDING = []  # signals received before the helper took the call
FS_ENCODING = sys.getfilesystemencoding()
S_IFMT, S_IFDIR = 0o170000, 0o040000
# The helper's own environment (each call brings its own): no password of the first call.
KEPT_FOR_HELPER = (b"PATH", b"LANG", b"LC_ALL", b"LC_CTYPE", b"MEMCCP_HELPER_IDLE")

# Exit statuses of memccp_py/status.py's ExitStatus, copied: importing that module would add
# 0.1 ms to every call (loaded by its path; 0.2-1 ms as a package), and these two are for
# rare ends only. tests/test_client_status.py checks that they stay the same.
INTERNAL = 70  # ExitStatus.INTERNAL


def signalled(signum: int) -> int:
    """ExitStatus.signalled(signum): a run ended by signal *signum*, as a shell reports it."""
    return 128 + signum


def installation() -> bytes:
    """This installation's name: each (a checkout, the package) has its own helper."""
    st = posix.stat(__file__.rpartition("/")[0] or ".")
    return b"%x-%x" % (st.st_dev, st.st_ino)


def _read(path: bytes, directory: int | None = None) -> bytes:
    """A small file whole (in *directory*, a descriptor, where given), b"?" where it cannot
    be read (absent, not allowed). /proc hands a small file over in one read."""
    if directory is None and not path.startswith(b"/"):
        return b"?"  # no directory to read it in: never the working directory's
    try:
        fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC, dir_fd=directory)
    except OSError:
        return b"?"
    try:
        data = chunk = posix.read(fd, 65536)
        while len(chunk) > 3072:  # a short first read is all there is
            chunk = posix.read(fd, 65536)
            data += chunk
        return data
    except OSError:
        return b"?"
    finally:
        posix.close(fd)


def fsencode(text: str) -> bytes:
    return text.encode(FS_ENCODING, "surrogateescape")


def socket_dir():
    """A directory only this user may enter ($XDG_RUNTIME_DIR/memccp, else /tmp/memccp-UID),
    made if missing; None if the one there is not safe."""
    uid = posix.getuid()
    runtime = posix.environ.get(b"XDG_RUNTIME_DIR", b"")
    path = b"/tmp/memccp-%d" % uid
    if runtime.startswith(b"/"):
        try:
            st = posix.stat(runtime)
            if st.st_uid == uid and (st.st_mode & 0o077) == 0:
                path = runtime.rstrip(b"/") + b"/memccp"
        except OSError:
            pass
    try:
        posix.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError:
        return None
    try:
        st = posix.lstat(path)
    except OSError:
        return None
    if (st.st_mode & S_IFMT) != S_IFDIR or st.st_uid != uid or st.st_mode & 0o077:
        return None
    return path


def peer_uid(sock) -> int:
    cred = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)  # struct ucred
    return int.from_bytes(cred[4:8], sys.byteorder)


def request_body() -> bytes:
    """What the helper needs besides the descriptors, NUL-separated."""
    umask = posix.umask(0o022)
    posix.umask(umask)
    stdio = []
    for stream in (sys.stdin, sys.stdout, sys.stderr):
        if stream is None:
            stdio += [b"", b"", b"0", b"0"]
        else:
            stdio += [stream.encoding.encode(), stream.errors.encode(),
                      b"1" if stream.line_buffering else b"0", b"1" if stream.write_through else b"0"]
    argv = [fsencode(arg) for arg in sys.argv[1:]]
    env = [key + b"=" + value for key, value in posix.environ.items()]
    return b"\0".join([PROTOCOL, STDIO_OPEN.encode(), b"%o" % umask, fsencode(FS_ENCODING), *stdio,
                       b"%d" % len(argv), *argv, *env])


class HelperReplies:
    """Reads the helper's replies: one line each."""

    def __init__(self, sock) -> None:
        self.sock, self.buffer = sock, b""

    def next(self, wake: int | None = None):
        """The next line, None at the end. With *wake* (the signal wake-up pipe), wait in
        poll() for the socket or a signal: the handler of one that came just before the
        wait runs at once, not once the line comes (the call's end, for its status)."""
        while b"\n" not in self.buffer:
            if wake is not None:
                _wait_readable(self.sock.fileno(), wake)
            chunk = self.sock.recv(256)
            if not chunk:
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line


def _wait_readable(fd: int, wake: int) -> None:
    """Return once *fd* is readable (or at its end); signals received meanwhile, or just
    before, wake the wait (their handlers run as it returns)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    poller.register(wake, select.POLLIN)
    while True:
        if any(which == fd for which, _ in poller.poll()):
            return
        try:
            while posix.read(wake, 64):
                pass
        except (BlockingIOError, InterruptedError):
            pass


def _kill(pid: int, signum: int) -> None:
    try:
        posix.kill(pid, signum)
    except OSError:
        pass


def via_helper(directory: bytes, name: bytes, refusal: list):
    """Run this call in the helper *name*; return its exit status, or None when the helper
    did not take the call (then nothing of it ran; *refusal* gets, if the helper said it,
    the name of the helper for this call's context, or "-", and why). Signals received meanwhile go to the worker, but for those this process
    ignores: they stay ignored, here and in the worker."""
    worker = [0]

    def forward(signum, frame):
        if worker[0]:
            _kill(worker[0], signum)
        else:
            PENDING.append(signum)

    def suspend(signum, frame):
        """Ctrl-Z: the worker stops with this process, and both go on together."""
        if worker[0]:
            _kill(worker[0], _signal.SIGSTOP)
        _signal.signal(signum, _signal.SIG_DFL)
        posix.kill(posix.getpid(), signum)  # stopped here until SIGCONT
        _signal.signal(signum, suspend)
        if worker[0]:
            _kill(worker[0], _signal.SIGCONT)

    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    wake = posix.pipe2(posix.O_NONBLOCK | posix.O_CLOEXEC)  # written on each signal
    previous_wake = _signal.set_wakeup_fd(wake[1])
    try:
        try:
            cwd = posix.open(".", posix.O_PATH | posix.O_DIRECTORY | posix.O_CLOEXEC)
        except OSError:
            return None
        try:
            sock.settimeout(ACCEPT_TIMEOUT)
            sock.connect(directory + b"/socket." + name)
            if peer_uid(sock) != posix.getuid():
                return None
            for signum in FORWARDED:
                if ORIGINAL[signum] != _signal.SIG_IGN:
                    _signal.signal(signum, forward)
            if _signal.getsignal(_signal.SIGTSTP) == _signal.SIG_DFL:
                _signal.signal(_signal.SIGTSTP, suspend)
            body = request_body()
            fds = [cwd] + [fd for fd in (0, 1, 2) if STDIO_OPEN[fd] == "1"]
            rights = b"".join(fd.to_bytes(4, sys.byteorder) for fd in fds)
            message = len(body).to_bytes(4, "big") + body
            try:
                sent = sock.sendmsg([message], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, rights)])
                if sent < len(message):
                    sock.sendall(message[sent:])
            except OSError:
                pass  # refused before it read the call: its reason may be waiting
            reply = HelperReplies(sock)
            accepted = reply.next()
        except OSError:
            return None
        finally:
            posix.close(cwd)
        if accepted is None or not accepted.startswith(b"A") or PENDING:
            if accepted is not None and accepted.startswith(b"N"):  # N<name> <why>
                key, _, why = accepted[1:].partition(b" ")
                refusal.append((key, why.decode("ascii", "replace")))
            return None  # not taken (or interrupted first): no "go", so nothing ran
        worker[0] = int(accepted[1:])
        sock.settimeout(None)
        try:
            sock.sendall(b"G")  # from here on the call is the helper's, whatever happens
        except OSError:
            pass  # the worker is gone; the helper may have said how already
        try:
            status = reply.next(wake[0])
        except OSError:
            status = None
    finally:
        # Signals from now on are not the worker's: once this process hangs up, its worker
        # may serve another caller. A handler runs between two steps of this thread, so none
        # passes a signal on after this line.
        worker[0] = 0
        sock.close()
        _signal.set_wakeup_fd(previous_wake)
        posix.close(wake[0])
        posix.close(wake[1])
    if status is None:
        if STDIO_OPEN[2] == "1":
            posix.write(2, b"memccp: internal error: the helper's worker ended without an exit status\n")
        return INTERNAL
    if status.startswith(b"K"):  # the worker was killed by a signal: so is this process
        signum = int(status[1:])
        try:
            _signal.signal(signum, _signal.SIG_DFL)
        except (OSError, ValueError):  # SIGKILL, SIGSTOP: no handler to reset
            pass
        posix.kill(posix.getpid(), signum)
        return signalled(signum)
    return int(status[1:])


def start_helper(directory: bytes, name: bytes) -> None:
    """Start a helper in the background, fully detached (its own session, no descriptors
    of ours, a fresh interpreter without this call's arguments), so that $(...), sudo and
    ssh do not wait for it."""
    home = __file__.rpartition("/")[0].rpartition("/")[0].rpartition("/")[0] or "."
    if not home.startswith("/"):
        home = posix.getcwd() + "/" + home
    try:
        pid = posix.fork()
    except OSError:
        return
    if pid:
        posix.waitpid(pid, 0)
        return
    try:
        posix.setsid()
        if posix.fork():
            posix._exit(0)
        null = posix.open("/dev/null", posix.O_RDWR)
        for fd in (0, 1, 2):
            if fd != null:
                posix.dup2(null, fd)  # inheritable
        if null > 2:
            posix.close(null)
        else:
            posix.set_inheritable(null, True)
        posix.closerange(3, max(posix.sysconf("SC_OPEN_MAX"), 1024))
        posix.chdir("/")
        code = (f"import sys; sys.path.insert(0, {home!r}); from memccp_py.warm.start import serve; "
                f"serve({directory.decode(FS_ENCODING, 'surrogateescape')!r}, {name.decode()!r})")
        env = {key: value for key, value in posix.environ.items() if key in KEPT_FOR_HELPER}
        posix.execve(sys.executable, [sys.executable, "-I", "-c", code], env)
    finally:
        posix._exit(0)


def in_process(why: str) -> int:
    """Run the call here: make bmemcached importable (-S left site out), keeping memccp_py
    where it was found, and its own directory off the path, were it there (its modules'
    names must not hide any other)."""
    package = __file__.rpartition("/")[0]
    sys.path[:] = [path for path in sys.path if path != package]
    if sys.flags.no_site:
        import site

        here = sys.path[0]
        site.main()
        if sys.path[0] != here:
            sys.path.insert(0, here)
    from memccp_py.warm.worker import run_in_process

    return run_in_process(why)


def switched_off() -> bytes | None:
    """Why no helper is used: MEMCCP_HELPER=off, or the system's /etc/memccp-py/helper
    saying "helper=off"; None if one may be."""
    off = (b"off", b"0", b"no", b"false")
    if posix.environ.get(b"MEMCCP_HELPER", b"").lower() in off:
        return b"MEMCCP_HELPER=off"
    for line in _read(SYSTEM_SWITCH).split(b"\n"):
        key, _, value = line.partition(b"=")
        if key.strip() == b"helper" and value.strip().lower() in off:
            return SYSTEM_SWITCH + b" says helper=off"
    return None


def main() -> int:
    """Run this process's call (sys.argv); return its exit status."""
    off = switched_off()
    if off is not None:
        return in_process(off.decode(FS_ENCODING, "surrogateescape"))
    if posix.getuid() != posix.geteuid() or posix.getgid() != posix.getegid():
        return in_process("set-user-ID or set-group-ID: no helper serves mixed ids")
    directory = socket_dir()
    if directory is None:
        return in_process("no private directory for the helper's socket")
    name = installation()  # the helper of whichever context came first
    refusal = []
    status = via_helper(directory, name, refusal)
    if status is None and refusal and refusal[0][0] not in (b"-", name):
        name = refusal[0][0]  # the helper of this context, as the other helper named it
        refusal = []
        status = via_helper(directory, name, refusal)
    if status is not None:
        posix._exit(status)  # nothing to flush or tidy: skip the interpreter's shutdown
    for signum in FORWARDED:  # as in-process from here on, as this process started
        _signal.signal(signum, ORIGINAL[signum])
    if _signal.getsignal(_signal.SIGTSTP) not in (_signal.SIG_DFL, _signal.SIG_IGN):
        _signal.signal(_signal.SIGTSTP, _signal.SIG_DFL)
    for signum in PENDING:  # what the signal would have done to an in-process run
        posix.kill(posix.getpid(), signum)
    if refusal:
        return in_process(f"the helper did not take the call: {refusal[0][1]}")
    start_helper(directory, name)
    return in_process("no helper took the call; one is starting")
