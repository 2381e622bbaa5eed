"""memccp calls in a worker forked from the warm helper (memccp_py/warm/helper.py): wait for
a call, check the caller's context against the worker's own, become the calling process
(:mod:`memccp_py.warm.takeover`), run cli.main() as the interpreter would, and wait for the
next call as the first one found it (:mod:`memccp_py.warm.idle`). Also the in-process run."""

from __future__ import annotations

import os
import select
import signal
import socket
import struct
import sys

from memccp_py.status import ExitStatus
from memccp_py.warm import takeover
from memccp_py.warm.idle import IdleState

RETIRE = signal.SIGUSR1  # the helper's "stop waiting for calls"


def run_in_process(why: str) -> int:
    """Run this process's own call (sys.argv) as memccp; --debug says why it ran here."""
    from memccp_py import cli

    return cli.main(note=f"run in-process ({why})")


def work(helper) -> None:
    """Serve calls from the helper's socket one after another (in a forked child), each
    from the same state (memccp_py/warm/idle.py), until one cannot be served from it."""
    helper.channel.close()
    for fd in (helper.wake_read, helper.wake_write, helper.lock, *helper.workers.values()):
        os.close(fd)
    signal.set_wakeup_fd(-1)
    for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, RETIRE):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    idle = IdleState()
    while _serve(helper) and idle.restore() is None and _tell(helper.worker_channel, b"F"):
        pass


def _serve(helper) -> bool:
    """Take the next call and serve it; True if it was served as memccp ends, and its
    client hung up once it had the status (this worker may then serve another call)."""
    taken = _accept(helper)
    if taken is None:
        return False
    conn, caller = taken
    with conn:
        request = takeover.receive(conn)
        if request is None:
            return False
        if takeover.in_background(caller, request):
            _refuse(conn, b"- a background job whose standard input is its terminal")
            return False
        try:  # from "A" on, the client passes signals on to this worker
            conn.sendall(b"A%d\n" % os.getpid())
            takeover.ignore_as(caller)
            argv = takeover.become_caller(*request)  # changes nothing outside this process
            if conn.recv(1) != b"G":
                return False  # the client went away or gave up: nothing ran
            status, clean = _main(helper, argv)
            # Before the status: the client's hanging up then no longer ends this worker.
            clean = clean and _tell(helper.worker_channel, b"D")
            conn.sendall(b"X%d\n" % status)
        except KeyboardInterrupt:  # Ctrl-C before memccp's own handling, or after it: death
            signal.signal(signal.SIGINT, signal.SIG_DFL)  # by the signal (the helper says "K2")
            os.kill(os.getpid(), signal.SIGINT)
            raise
        except OSError:
            clean = False  # the client is gone
        try:
            clean = clean and _client_hung_up(conn)
        except KeyboardInterrupt:  # passed on for the call that is over: its caller has the status
            clean = False
    _let_go()
    return clean


#: Seconds a worker waits, once its caller has the status, for the caller to hang up.
HANG_UP_WAIT = 1.0


def _client_hung_up(conn: socket.socket) -> bool:
    """Whether the client hung up once it had its status (at once, as a client does): until
    then it may still pass a signal on to this worker, which must not reach the next
    caller's call. A client that does not (stopped, say) leaves this worker to end."""
    conn.settimeout(HANG_UP_WAIT)
    try:
        return conn.recv(1) == b""
    except OSError:
        return False


def _tell(channel: socket.socket, what: bytes) -> bool:
    """Tell the helper *what* of this worker ("D": its call is over, "F": it is a spare
    again); False if the helper has gone."""
    try:
        channel.send(what + b"%d" % os.getpid(), socket.MSG_NOSIGNAL)
    except OSError:
        return False
    return True


def _accept(helper) -> tuple[socket.socket, dict] | None:
    """The next call from a caller in the helper's own context, once the helper knows this
    worker took it, with what else the kernel says of the caller; None when the helper has
    gone or retires, or when the code changed (then the helper is told)."""
    channel, listener = helper.worker_channel, helper.listener
    while True:
        ready, _, _ = select.select([listener, channel], [], [])
        if channel in ready:
            return None  # the helper has gone
        try:
            conn, _ = listener.accept()
        except (BlockingIOError, InterruptedError):
            continue
        signal.pthread_sigmask(signal.SIG_BLOCK, {RETIRE})  # a call that is taken is served
        differs, caller = _compare(conn, helper.context)
        if differs is not None:
            _refuse(conn, differs)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {RETIRE})
            continue
        if helper.watch.changed():
            channel.send(b"R")
            conn.close()
            return None
        channel.sendmsg([b"T%d" % os.getpid()],
                        [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", conn.fileno()))])
        conn.setblocking(True)
        return conn, caller


#: SO_PEERPIDFD (Linux 6.5): a pidfd of the very process that connected.
SO_PEERPIDFD = getattr(socket, "SO_PEERPIDFD", 77)


def _compare(conn: socket.socket, own: list) -> tuple[bytes | None, dict]:
    """(None, what else is known of the caller) when the process at the other end of *conn*
    is, in every respect :func:`memccp_py.warm.context.context` reads from /proc (never from what
    it says), the same as this helper's *own*; else (the name of the helper of the caller's
    context, or "-", and why not, {})."""
    from memccp_py.warm.context import context, helper_name

    pid, uid, gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
    if uid != os.getuid() or gid != os.getgid():
        return b"- another user", {}
    try:
        try:
            pidfd = conn.getsockopt(socket.SOL_SOCKET, SO_PEERPIDFD)
        except OSError:
            pidfd = os.pidfd_open(pid)  # the caller waits for an answer: its pid stays its own
    except OSError:
        return b"- the caller is gone", {}
    try:
        pairs, extra = context(b"/proc/%d" % pid)
        if select.select([pidfd], [], [], 0)[0]:  # it ended, and the pid may be another's now
            return b"- the caller is gone", {}
    finally:
        os.close(pidfd)
    for (name, value), (_, mine) in zip(pairs, own):
        if value != mine:  # the caller is told which helper is its context's
            return helper_name(pairs) + b" " + name + b" differs", {}
    return None, extra


def _refuse(conn: socket.socket, why: bytes) -> None:
    """Tell the client why its call is not taken, after the name of the helper of its
    context, or "-" (it then goes there, or runs the call in-process)."""
    try:
        conn.sendall(b"N" + why + b"\n")
    except OSError:
        pass
    conn.close()


def _main(helper, argv: list[str]) -> tuple[int, bool]:
    """cli.main() as the interpreter would run it, with the helper's parser: its exit
    status, and whether it ended as memccp ends (not by an exception it did not expect)."""
    from memccp_py.settings.definition import forget_terminal_width

    forget_terminal_width()  # measure this caller's terminal, not the helper's
    clean = True
    try:
        status = helper.cli.main(argv, parser=helper.parser,
                                 note=f"run by the warm helper (pid {os.getppid()}, worker {os.getpid()})")
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else \
            (ExitStatus.SUCCESS if exc.code is None else ExitStatus.FAILURE)
        if not isinstance(exc.code, int) and exc.code is not None and sys.stderr is not None:
            sys.stderr.write(f"{exc.code}\n")
    except KeyboardInterrupt:
        _traceback()
        _flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)  # as the interpreter does: die by the signal
        status = ExitStatus.INTERRUPTED
    except BaseException:  # noqa: BLE001  (as the interpreter: a traceback, status 1)
        _traceback()
        status, clean = ExitStatus.FAILURE, False
    if not _flush() and status == 0:
        status = ExitStatus.FLUSH_FAILED  # as the interpreter when flushing at exit fails
    return status, clean


def _let_go() -> None:
    """Hold none of the caller's descriptors once it has its status (everything is
    flushed): a $(...) reading our output, or sudo's terminal, are done when the caller is,
    not when this process has finished tearing down its memory."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)


def _traceback() -> None:
    if sys.stderr is not None:
        import traceback

        traceback.print_exc()


def _flush() -> bool:
    ok = True
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            try:
                stream.flush()
            except (OSError, ValueError):
                ok = False
    return ok
