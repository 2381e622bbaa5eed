"""One memccp call in a worker forked from the warm helper (memccp_py/warm/helper.py): wait for
a call, become the calling process (directory, umask, environment, descriptors 0-2,
standard streams) and run cli.main() as the interpreter would. Also the in-process run."""

from __future__ import annotations

import io
import os
import select
import signal
import socket
import struct
import sys

from memccp_py.status import ExitStatus

PROTOCOL = b"memccp-helper-1"
MAX_REQUEST = 8 << 20
RETIRE = signal.SIGUSR1  # the helper's "stop waiting for calls"


def run_in_process(why: str) -> int:
    """Run this process's own call (sys.argv) as memccp; --debug says why it ran here."""
    from memccp_py import cli

    return cli.main(note=f"run in-process ({why})")


def work(helper) -> None:
    """Wait for one call on the helper's socket and serve it (in a forked child)."""
    helper.channel.close()
    for fd in (helper.wake_read, helper.wake_write, *helper.workers.values()):
        os.close(fd)
    signal.set_wakeup_fd(-1)
    for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, RETIRE):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if not select.select([helper.listener], [], [], 0)[0]:
        signal.pthread_sigmask(signal.SIG_BLOCK, {RETIRE})  # ends after the rehearsal's tidying
        helper.rehearse()  # while no one waits: the memory a call writes is copied now
        _rehearse_check(helper.context)
        _rehearse_environment()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {RETIRE})
    taken = _accept(helper)
    if taken is None:
        return
    conn, caller = taken
    request = _receive(conn)
    if request is None:
        return
    if _in_background(caller, request):
        _refuse(conn, b"- a background job whose standard input is its terminal")
        return
    conn.sendall(b"A%d\n" % os.getpid())
    try:
        _ignore_as(caller)
        argv = _become_caller(*request)  # changes nothing outside this process
        if conn.recv(1) != b"G":
            return  # the client went away or gave up: nothing ran
        status = _main(helper, argv)
    except KeyboardInterrupt:  # Ctrl-C before memccp's own handling was in place
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
        raise
    try:
        conn.sendall(b"X%d\n" % status)
    except OSError:
        pass
    _let_go()


def _accept(helper) -> tuple[socket.socket, dict] | None:
    """The next call from a caller in the helper's own context, once the helper knows this
    worker took it, with what else the kernel says of the caller; None when the helper has
    gone or retires, or when the code changed (then the helper is told)."""
    os.close(helper.lock)
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
        listener.close()
        channel.close()
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


def _rehearse_check(own: list) -> None:
    """Check this worker itself as a caller, while no one waits: the pages a check writes
    are copied and its code and data are in the caches before a caller waits on them."""
    try:
        ends = socket.socketpair()
    except OSError:
        return
    try:
        _compare(ends[0], own)
    except OSError:
        pass
    finally:
        for end in ends:
            end.close()


#: What a rehearsal puts in the C library's environment and takes out again: as many
#: variables as a usual login's, of the usual lengths (8 to 256 bytes).
_STAND_IN_ENVIRONMENT = tuple((b"MEMCCP_REHEARSAL_%d" % i, b"x" * (8 << i % 6)) for i in range(48))


def _rehearse_environment() -> None:
    """Set and unset a stand-in environment, as a call sets its caller's: the C library
    allocates each variable it is given, and in a worker just forked the first such
    allocations write pages still shared with the helper, each then copied (some 5 us a
    variable, against 1 us once done): a caller does not wait for those copies."""
    for key, value in _STAND_IN_ENVIRONMENT:
        os.putenv(key, value)
    for key, _ in _STAND_IN_ENVIRONMENT:
        os.unsetenv(key)


def _refuse(conn: socket.socket, why: bytes) -> None:
    """Tell the client why its call is not taken, after the name of the helper of its
    context, or "-" (it then goes there, or runs the call in-process)."""
    try:
        conn.sendall(b"N" + why + b"\n")
    except OSError:
        pass
    conn.close()


def _in_background(caller: dict, request) -> bool:
    """Whether the caller's standard input is its terminal while it is not in the terminal's
    foreground process group: reading it must stop the caller (job control), in-process."""
    fds, fields = request
    if fields[1][:1] != b"1" or not os.isatty(fds[1]):
        return False
    return caller.get(b"tty", b"0") != b"0" and caller.get(b"tpgid") != caller.get(b"pgrp")


def _ignore_as(caller: dict) -> None:
    """Ignore the signals the caller ignores (nohup, a background job of a script)."""
    ignored = int(caller.get(b"SigIgn", b"0"), 16)
    while ignored:  # the set bits alone: a caller ignores two or three signals of 64
        signum = (ignored & -ignored).bit_length()
        ignored &= ignored - 1
        if signum < signal.NSIG and signum not in (signal.SIGKILL, signal.SIGSTOP):
            try:
                signal.signal(signum, signal.SIG_IGN)
            except (OSError, ValueError):
                pass


def _receive(conn: socket.socket):
    """(descriptors, fields) of the call, or None if it is not one this worker can take."""
    conn.settimeout(5.0)
    fds: list[int] = []
    try:
        data, ancillary, _, _ = conn.recvmsg(1 << 16, socket.CMSG_SPACE(4 * 4))
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds += [fd for fd, in struct.iter_unpack("i", payload[:len(payload) // 4 * 4])]
        if len(data) < 4 or int.from_bytes(data[:4], "big") > MAX_REQUEST:
            return None
        size, body = int.from_bytes(data[:4], "big"), data[4:]
        while len(body) < size:
            chunk = conn.recv(min(1 << 20, size - len(body)))
            if not chunk:
                return None
            body += chunk
        fields = body.split(b"\0")
        if fields[0] != PROTOCOL or len(fds) != 1 + fields[1].count(b"1") \
                or fields[3] != os.fsencode(sys.getfilesystemencoding()):
            return None
    except (OSError, ValueError, IndexError):
        return None
    finally:
        conn.settimeout(None)
    return fds, fields


def _become_caller(fds: list[int], fields: list[bytes]) -> list[str]:
    """Become the client's process (directory, umask, environment, descriptors, standard
    streams) while its go is on the way; return its arguments."""
    open_mask, umask = fields[1].decode(), int(fields[2], 8)
    stdio = [fields[4 + 4 * i:8 + 4 * i] for i in range(3)]
    argc = int(fields[16])
    argv = [os.fsdecode(arg) for arg in fields[17:17 + argc]]
    os.fchdir(fds[0])
    os.close(fds[0])
    os.umask(umask)
    _set_environment(fields[17 + argc:])
    given = iter(fds[1:])
    for fd in (0, 1, 2):
        if open_mask[fd] == "1":
            source = next(given)
            os.dup2(source, fd)
            os.close(source)
        else:
            os.close(fd)
    streams = [_stream(fd, *stdio[fd]) if open_mask[fd] == "1" else None for fd in (0, 1, 2)]
    sys.stdin, sys.stdout, sys.stderr = streams
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = streams
    sys.argv = ["memccp", *argv]
    return argv


def _set_environment(entries: list[bytes]) -> None:
    """Make the environment the client's: os.environ and the C library's (for the
    resolver), one putenv per variable that differs."""
    wanted = {}
    for entry in entries:
        key, sep, value = entry.partition(b"=")
        if sep and key:
            wanted[key] = value
    data = getattr(os.environ, "_data", None)  # shared by os.environ and os.environb
    if not isinstance(data, dict) or any(not isinstance(key, bytes) for key in data):
        environ = os.environb
        for key in [key for key in environ if key not in wanted]:
            del environ[key]
        environ.update(wanted)
        return
    for key in data:
        if key not in wanted:
            os.unsetenv(key)
    for key, value in wanted.items():
        if data.get(key) != value:
            os.putenv(key, value)
    data.clear()
    data.update(wanted)


def rehearsal_stream(fd: int) -> io.TextIOWrapper:
    """A standard stream as a call most often has it (for a rehearsal)."""
    return _stream(fd, b"utf-8", b"strict", b"0", b"0")


def _stream(fd: int, encoding: bytes, errors: bytes, line_buffering: bytes, write_through: bytes):
    """A standard stream as the interpreter makes it at start-up."""
    reading = fd == 0
    raw = io.FileIO(fd, "rb" if reading else "wb", closefd=False)
    buffer = io.BufferedReader(raw) if reading else io.BufferedWriter(raw)
    return io.TextIOWrapper(buffer, encoding=encoding.decode(), errors=errors.decode(), newline="\n",
                            line_buffering=line_buffering == b"1", write_through=write_through == b"1")


def _main(helper, argv: list[str]) -> int:
    """cli.main() as the interpreter would run it, with the helper's parser."""
    from memccp_py.settings.definition import forget_terminal_width

    forget_terminal_width()  # measure this caller's terminal, not the helper's
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
        status = ExitStatus.FAILURE
    if not _flush() and status == 0:
        status = ExitStatus.FLUSH_FAILED  # as the interpreter when flushing at exit fails
    return status


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
