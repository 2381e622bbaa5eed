"""The thin client behind bin/memccp: it loads only modules built into the interpreter
(no site, no bmemcached) and hands the call (arguments, environment, working directory,
standard descriptors) to the warm helper of the same user (memccp_py/helper.py), then
exits with the status the helper reports. When there is no helper it starts one in the
background and runs the call itself, in-process, as it does every call the helper did not
accept. MEMCCP_HELPER=off: always in-process.
"""

import os
import sys

import _signal
import _socket

STDIO_OPEN = "".join("1" if stream is not None else "0"
                     for stream in (sys.stdin, sys.stdout, sys.stderr))  # before any fd is opened
PROTOCOL = b"memccp-helper-1"
ACCEPT_TIMEOUT = 5.0  # seconds a helper may take to accept before this call runs in-process
FORWARDED = (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP)


def socket_dir():
    """A directory only this user may enter ($XDG_RUNTIME_DIR/memccp, else
    /tmp/memccp-UID), made if missing; None if the one there is not safe."""
    uid = os.getuid()
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    parent = None
    if runtime.startswith("/"):
        try:
            st = os.stat(runtime)
            if st.st_uid == uid and (st.st_mode & 0o077) == 0:
                parent = runtime
        except OSError:
            pass
    path = os.path.join(parent, "memccp") if parent else f"/tmp/memccp-{uid}"
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError:
        return None
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if (st.st_mode & 0o170000) != 0o040000 or st.st_uid != uid or st.st_mode & 0o077:
        return None
    return path


def peer_uid(sock):
    cred = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)  # struct ucred
    return int.from_bytes(cred[4:8], sys.byteorder)


def request_body():
    """What the helper needs besides the descriptors, NUL-separated."""
    umask = os.umask(0o022)
    os.umask(umask)
    stdio = []
    for stream in (sys.stdin, sys.stdout, sys.stderr):
        if stream is None:
            stdio += [b"", b"", b"0", b"0"]
        else:
            stdio += [stream.encoding.encode(), stream.errors.encode(),
                      b"1" if stream.line_buffering else b"0", b"1" if stream.write_through else b"0"]
    argv = [os.fsencode(arg) for arg in sys.argv[1:]]
    env = [key + b"=" + value for key, value in os.environb.items()]
    fields = [PROTOCOL, STDIO_OPEN.encode(), b"%o" % umask, os.fsencode(sys.getfilesystemencoding()), *stdio, b"%d" % len(argv), *argv, *env]
    return b"\0".join(fields)


class Lines:
    """Reads the helper's replies: one line each."""

    def __init__(self, sock):
        self.sock, self.buffer = sock, b""

    def next(self):
        while b"\n" not in self.buffer:
            chunk = self.sock.recv(256)
            if not chunk:
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line


PENDING = []  # signals received before the helper took the call


def via_helper(directory):
    """Run this call in the helper; return its exit status, or None when the helper did
    not take the call (then nothing of it ran). Signals received meanwhile go to the worker."""
    pending, worker = PENDING, [0]

    def forward(signum, frame):
        if worker[0]:
            try:
                os.kill(worker[0], signum)
            except OSError:
                pass
        else:
            pending.append(signum)

    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        try:
            cwd = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            sock.settimeout(ACCEPT_TIMEOUT)
            sock.connect(os.path.join(directory, "socket"))
            if peer_uid(sock) != os.getuid():
                return None
            for signum in FORWARDED:
                _signal.signal(signum, forward)
            body = request_body()
            fds = [cwd] + [fd for fd in (0, 1, 2) if STDIO_OPEN[fd] == "1"]
            rights = b"".join(fd.to_bytes(4, sys.byteorder) for fd in fds)
            head = len(body).to_bytes(4, "big")
            sent = sock.sendmsg([head, body], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, rights)])
            if sent < len(head) + len(body):
                sock.sendall((head + body)[sent:])
            reply = Lines(sock)
            accepted = reply.next()
        except OSError:
            return None
        finally:
            os.close(cwd)
        if accepted is None or not accepted.startswith(b"A") or pending:
            return None  # not taken (or interrupted first): no "go", so nothing ran
        worker[0] = int(accepted[1:])
        sock.settimeout(None)
        try:
            sock.sendall(b"G")  # from here on the call is the helper's, whatever happens
            status = reply.next()
        except OSError:
            status = None
    finally:
        sock.close()
    if status is None:
        if STDIO_OPEN[2] == "1":
            os.write(2, b"memccp: internal error: the helper's worker ended without an exit status\n")
        return 70
    if status.startswith(b"K"):  # the worker was killed by a signal: so is this process
        signum = int(status[1:])
        try:
            _signal.signal(signum, _signal.SIG_DFL)
        except (OSError, ValueError):  # SIGKILL, SIGSTOP: no handler to reset
            pass
        os.kill(os.getpid(), signum)
        return 128 + signum
    return int(status[1:])


def start_helper(directory):
    """Start a helper in the background, fully detached (its own session, no descriptors
    of ours), so that $(...), sudo and ssh do not wait for it."""
    try:
        pid = os.fork()
    except OSError:
        return
    if pid:
        os.waitpid(pid, 0)
        return
    try:
        os.setsid()
        if os.fork():
            os._exit(0)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            if fd != null:
                os.dup2(null, fd)  # inheritable
        if null > 2:
            os.close(null)
        else:
            os.set_inheritable(null, True)
        os.closerange(3, os.sysconf("SC_OPEN_MAX") if os.sysconf("SC_OPEN_MAX") > 0 else 1024)
        os.chdir("/")
        home = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        code = f"import sys; sys.path.insert(0, {home!r}); from memccp_py.helper import serve; serve({directory!r})"
        os.execv(sys.executable, [sys.executable, "-I", "-c", code])  # argv: no secret of this call
    finally:
        os._exit(0)


def import_path():
    """Make bmemcached importable (-S left site out), keeping memccp_py where it was found."""
    if sys.flags.no_site:
        import site

        here = sys.path[0]
        site.main()
        if sys.path[0] != here:
            sys.path.insert(0, here)


def in_process(why):
    import_path()
    from memccp_py.worker import run_in_process

    return run_in_process(why)


def main():
    """Run this process's call (sys.argv) and exit with its status."""
    if os.environ.get("MEMCCP_HELPER", "").lower() in ("off", "0", "no", "false"):
        return in_process("MEMCCP_HELPER=off")
    directory = socket_dir()
    if directory is None:
        return in_process("no private directory for the helper's socket")
    status = via_helper(directory)
    if status is not None:
        os._exit(status)  # nothing to flush or tidy: skip the interpreter's shutdown
    for signum in FORWARDED:  # as in-process from here on
        _signal.signal(signum, _signal.SIG_DFL if signum != _signal.SIGINT else _signal.default_int_handler)
    for signum in PENDING:  # what the signal would have done to an in-process run
        os.kill(os.getpid(), signum)
    start_helper(directory)
    return in_process("no helper took the call; one is starting")


