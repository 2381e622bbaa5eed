"""The warm helper behind bin/memccp: one per user and context, kept while calls come.

It has memccp_py and bmemcached imported and the argument parser built, and keeps a forked
worker waiting on the socket: a loop running memccp once per file pays neither the
interpreter's start-up nor the imports nor a fork. A call (memccp_py/warm/client.py) goes:

    client -> 4-byte length, NUL-separated fields, and by SCM_RIGHTS the working
              directory and those of the descriptors 0, 1, 2 that are open
    worker -> "A<pid>\\n"  (accepted; the client may still walk away: nothing ran yet)
    client -> "G"          (go: from now on the call is the worker's, never run again)
    worker -> "X<status>\\n", or the helper "K<signal>\\n" when a signal killed the worker.

A worker tells the helper "T" (with the connection) when it takes a call, "D" when the call
is over (before its client has the status: the client's hanging up then no longer ends it),
"F" once it has put itself back (memccp_py/warm/idle.py) and is a spare again, and "R" when
the code changed. Only callers in the helper's own context are served (context.py). The
helper leaves after MEMCCP_HELPER_IDLE seconds (default 5, at most 60) without a call, and
as soon as its code changed on disk (memccp_py/warm/codewatch.py).
"""

from __future__ import annotations

import gc
import io
import os
import select
import signal
import socket
import sys
import time

from memccp_py.warm.context import context
from memccp_py.warm.codewatch import CodeWatch
from memccp_py.warm.worker import HANG_UP_WAIT

#: When this module was loaded: a code change since then, even before the watch on the code
#: was in place, makes the helper retire.
BEGAN_NS = time.time_ns()

DEFAULT_IDLE = 5.0
MAX_IDLE = 60.0  # seconds: MEMCCP_HELPER_IDLE asks for at most this
SPARE_DELAY = 0.02  # seconds a call runs before the next worker is forked anyway
#: Seconds a worker whose call is over may take to be back before another is forked: it waits
#: HANG_UP_WAIT for its client to hang up, and ends if it does not.
FINISHING_WAIT = HANG_UP_WAIT + 0.1
SPARE_FAILURES = 3  # workers that die before taking a call, in a row, before the helper gives up


def _warm_up(cli, nowhere: str) -> None:
    """One call that fails before reaching any server (NOWHERE is a socket that does not
    exist) and a name look-up, so that what their first use imports or caches is paid
    once here rather than by every worker."""
    socket.getaddrinfo("127.0.0.1", 11211, type=socket.SOCK_STREAM)
    streams = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = io.StringIO()
    try:
        cli.main(["--servers", nowhere, "--", "/dev/null"])
    except Exception:  # noqa: BLE001  (only a warm-up)
        pass
    finally:
        sys.stdout, sys.stderr = streams


class Helper:
    """The helper's state; workers are forked from it and read it."""

    def __init__(self, listener: socket.socket, path: str, lock: int, lock_path: str) -> None:
        self.listener, self.path, self.lock, self.lock_path = listener, path, lock, lock_path
        self.inode = os.stat(path).st_ino
        self.accepting = True
        self.spares: set[int] = set()   # the workers waiting for a call
        self.failures = 0
        self.workers: dict[int, int] = {}  # pid -> its client connection (a duplicate)
        self.channel = self.worker_channel = None
        self.wake_read = self.wake_write = -1
        try:
            idle = float(os.environ.get("MEMCCP_HELPER_IDLE", DEFAULT_IDLE))
        except ValueError:
            idle = DEFAULT_IDLE
        self.idle = min(max(idle, 0.0), MAX_IDLE) if idle == idle else DEFAULT_IDLE  # NaN
        self.hung_up: set[int] = set()  # workers whose client hung up (killed, or continued)
        #: workers whose call is over ("D"), not yet put back: pid -> when it said so
        self.finishing: dict[int, float] = {}
        self.served: set[int] = set()  # spares that have served a call

    def start(self) -> None:
        """Import everything a call needs, once."""
        from memccp_py import cli

        import bmemcached  # noqa: F401
        import memccp_py.run  # noqa: F401
        import memccp_py.warm.worker  # noqa: F401

        self.cli, self.parser = cli, cli.build_parser()
        self.context, _ = context()  # what a caller's must be, read once
        _warm_up(self.cli, os.path.join(os.path.dirname(self.path), "warm-up"))
        self.watch = CodeWatch(since_ns=BEGAN_NS)
        self.channel, self.worker_channel = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.wake_read, self.wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self.wake_write)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        gc.collect()
        gc.freeze()  # keep the imported objects' pages shared with the workers

    def loop(self) -> None:
        """Keep a worker waiting for calls, reap the ones done, leave when idle. A worker
        whose call is over is a spare again; another is forked only when none is
        (_fork_due). A worker whose client went away (killed) is killed at once, as the
        call would have been in-process."""
        last = time.monotonic()
        while self.accepting or self.workers or self.spares:
            while self.accepting and not self.spares and time.monotonic() >= self._fork_due(last):
                self.spares.add(self._fork_worker())
            if not self.accepting or self.spares:
                wait = None if self.workers or not self.accepting else \
                    max(0.0, last + self.idle - time.monotonic())
            else:
                wait = max(0.0, self._fork_due(last) - time.monotonic())
            poller = select.poll()
            for fd in (self.channel.fileno(), self.wake_read):
                poller.register(fd, select.POLLIN)
            watched = self.accepting and self.watch.fileno() is not None
            if watched:
                poller.register(self.watch.fileno(), select.POLLIN)
            clients = {conn: pid for pid, conn in self.workers.items() if pid not in self.hung_up}
            for conn in clients:
                poller.register(conn, select.POLLRDHUP)
            ready = {fd for fd, _ in poller.poll(None if wait is None else wait * 1000)}
            if self._heard(ready, clients):
                last = time.monotonic()
            if watched and self.watch.fileno() in ready:
                self.retire()  # the code changed: let a new helper start
            if self.wake_read in ready:
                self._drain_wake()
                self._reap()
            if not ready and self.accepting and not self.workers and self.spares:
                self.retire()  # idle

    def _fork_due(self, last: float) -> float:
        """When to fork a worker, none being spare (*last*: when a worker last said
        anything): at once if no worker is busy; SPARE_DELAY after that if a call runs; a
        worker whose call is over ("D") is waited for until it is back, or ends, as it does
        once FINISHING_WAIT has passed."""
        if not self.workers:
            return 0.0
        if any(pid not in self.finishing for pid in self.workers):
            return last + SPARE_DELAY
        return min(self.finishing.values()) + FINISHING_WAIT

    def _heard(self, ready: set[int], clients: dict[int, int]) -> bool:
        """What workers said, then the clients (connection -> worker) that hung up, of the
        descriptors *ready*; True if a worker took, finished or put away a call. A worker
        heard from since the look is looked at again (it may have finished, or taken another
        call on another connection)."""
        heard: set[int] = set()
        took = bool(ready & (clients.keys() | {self.channel.fileno()})) and self._messages(heard)
        for conn in ready & clients.keys():
            if clients[conn] not in heard:
                self._hung_up(clients[conn])
        return took

    def _hung_up(self, pid: int) -> None:
        """The client of worker *pid* closed its end. During the call it was killed (it waits
        for the status otherwise), so the call ends now, writing nothing more to the caller's
        descriptors. Once the call is over ("D": its status is on the way), it hung up as a
        client does; a worker it had stopped (Ctrl-Z) goes on to put itself back."""
        self.hung_up.add(pid)
        try:
            os.kill(pid, signal.SIGCONT if pid in self.finishing else signal.SIGKILL)
        except OSError:
            pass

    def _fork_worker(self) -> int:
        pid = os.fork()
        if pid == 0:
            try:
                from memccp_py.warm.worker import work

                work(self)
            finally:
                os._exit(0)
        return pid

    def _messages(self, heard: set[int] | None = None) -> bool:
        """Read what workers said (adding to *heard* the pids that took a call or finished
        one); True if one did."""
        took = False
        while True:
            try:
                data, ancillary, _, _ = self.channel.recvmsg(64, socket.CMSG_SPACE(4), socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return took
            if not data:
                return took
            fds = [int.from_bytes(payload[i:i + 4], sys.byteorder)
                   for level, kind, payload in ancillary
                   if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS
                   for i in range(0, len(payload) - 3, 4)]
            if data.startswith(b"T") and fds:
                pid = int(data[1:])
                self.workers[pid] = fds[0]
                self.spares.discard(pid)
                self.failures, took = 0, True
            elif data[:1] in (b"D", b"F") and not fds:
                pid = int(data[1:])
                if data.startswith(b"D"):
                    self.finishing[pid] = time.monotonic()
                else:
                    self._free(pid)
                took = True
            else:
                for fd in fds:
                    os.close(fd)
                if data == b"R":
                    self.retire()  # the code changed: let a new helper start
                continue
            if heard is not None:
                heard.add(pid)

    def _free(self, pid: int) -> None:
        """Worker *pid* has put itself back after its call (memccp_py/warm/idle.py): a spare
        again."""
        conn = self.workers.pop(pid, None)
        if conn is None:
            return
        os.close(conn)
        self.hung_up.discard(pid)
        self.finishing.pop(pid, None)
        self.spares.add(pid)
        self.served.add(pid)
        if not self.accepting:
            try:  # it takes the signal once it has put itself back, and ends
                os.kill(pid, signal.SIGUSR1)
            except OSError:
                pass

    def _drain_wake(self) -> None:
        try:
            while os.read(self.wake_read, 512):
                pass
        except BlockingIOError:
            pass

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            # Read after each reaping, not before it: a worker that took a call, served it and
            # ended between the two would pass for a spare that died, and its connection stay
            # here for good (the helper then never idle, its next spare forked late, and that
            # pid killed when reused). What it said before it ended is in the channel by now.
            self._messages()
            self._finished(pid, status)

    def _finished(self, pid: int, status: int) -> None:
        """A worker ended: if a signal killed it during a call, tell its client which."""
        if pid in self.spares:
            self.spares.discard(pid)
            if pid in self.served:  # it served calls, then ended: no failure
                self.served.discard(pid)
                return
            self.failures += 1
            if self.failures >= SPARE_FAILURES:
                self.retire()
            return
        conn = self.workers.pop(pid, None)
        self.hung_up.discard(pid)
        self.finishing.pop(pid, None)
        self.served.discard(pid)
        if conn is None:
            return
        if os.WIFSIGNALED(status):
            try:
                os.write(conn, b"K%d\n" % os.WTERMSIG(status))
            except OSError:
                pass
        os.close(conn)

    def retire(self) -> None:
        """Take no more calls, and let a successor start at once; running calls go on."""
        if not self.accepting:
            return
        self.accepting = False
        try:  # unless a successor has put its own socket there already
            if os.stat(self.path).st_ino == self.inode:
                os.unlink(self.path)
        except OSError:
            pass
        self.listener.close()
        try:  # the lock goes too, unless a successor holds one there already
            if os.stat(self.lock_path).st_ino == os.fstat(self.lock).st_ino:
                os.unlink(self.lock_path)
        except OSError:
            pass
        os.close(self.lock)
        for spare in self.spares:
            try:  # a spare that has accepted a call already has this signal blocked
                os.kill(spare, signal.SIGUSR1)
            except OSError:
                pass
