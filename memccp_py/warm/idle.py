"""A worker between two calls: what it is while it waits (taken before its first call), put
back after each call, and checked: a worker serves its next call only as the process its
first call found, else it ends and the helper forks a fresh one.

A call changes the worker's working directory, umask, environment, standard descriptors and
streams, arguments and signal dispositions (memccp_py/warm/takeover.py), and a walk raises
the limit of open descriptors: these are put back, so that nothing of a caller is held
between calls (its directory stays free to unmount, its password leaves the environment).
What a process says once (a Python warning: its registry, and the compiled patterns whose
compiling warns) is forgotten, so that each call says it as in its own process.
What a call might leave that cannot be put back (a descriptor or thread left open, a log
handler, memory grown) is looked for, and ends the worker.
"""

from __future__ import annotations

import os
import re
import resource
import signal
import sys
import threading
import warnings

from memccp_py.warm.takeover import set_environment

#: Calls one worker serves before it ends: whatever a call might leave that the check does
#: not see lasts that long at most (a fresh worker costs a fork and the copying of the memory
#: its first call writes, some 5 ms of processor time, here spread over this many calls).
MAX_CALLS = 100
#: A worker that grew by more than this while it served (a large file, a long list of
#: names) ends rather than keep the memory.
MAX_GROWTH = 16 << 20

#: Signals whose disposition cannot be changed.
_FIXED = {signal.SIGKILL, signal.SIGSTOP}
_LIMITS = tuple(getattr(resource, name) for name in dir(resource) if name.startswith("RLIMIT_"))


def _descriptors() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


def _logging() -> tuple:
    """The root logger's handlers and level (as it starts: none, WARNING, when logging was
    never imported)."""
    logging = sys.modules.get("logging")
    return ((), 30) if logging is None else (tuple(logging.root.handlers), logging.root.level)


def _resident() -> int:
    with open("/proc/self/statm", "rb") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class IdleState:
    """The worker as it waits for a call; :meth:`restore` puts it back after one."""

    def __init__(self) -> None:
        self.directory = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        self.umask = os.umask(0o022)
        os.umask(self.umask)
        self.environment = [key + b"=" + value for key, value in os.environb.items()]
        self.dispositions = {signum: signal.getsignal(signum) for signum in signal.valid_signals()
                             if signum not in _FIXED}
        self.mask = signal.pthread_sigmask(signal.SIG_BLOCK, ())
        self.streams = (sys.stdin, sys.stdout, sys.stderr, sys.__stdin__, sys.__stdout__, sys.__stderr__)
        self.argv = list(sys.argv)
        self.limits = {limit: resource.getrlimit(limit) for limit in _LIMITS}
        self.logging = _logging()
        self.warning_filters = list(warnings.filters)
        self.descriptors = _descriptors()
        self.threads = threading.active_count(), _threads()
        self.resident = _resident()
        self.calls = 0

    def restore(self) -> str | None:
        """Put the worker back as it waited (its standard descriptors are /dev/null again
        already); None if it may serve another call, else why not."""
        self.calls += 1
        os.fchdir(self.directory)
        os.umask(self.umask)
        set_environment(self.environment)
        for signum, handler in self.dispositions.items():
            if handler is not None and signal.getsignal(signum) != handler:
                signal.signal(signum, handler)
        sys.stdin, sys.stdout, sys.stderr, sys.__stdin__, sys.__stdout__, sys.__stderr__ = self.streams
        sys.argv = list(self.argv)
        warnings.resetwarnings()  # every "said once already" is forgotten with the filters
        warnings.filters[:] = self.warning_filters
        re.purge()
        why = self._limits_back() or self._left_behind()
        signal.pthread_sigmask(signal.SIG_SETMASK, self.mask)  # a retirement waiting ends it here
        return why

    def _limits_back(self) -> str | None:
        """The resource limits as they were (a walk raises the open descriptors')."""
        for limit, values in self.limits.items():
            if resource.getrlimit(limit) != values:
                try:
                    resource.setrlimit(limit, values)
                except (OSError, ValueError):
                    return "a resource limit could not be put back"
        return None

    def _left_behind(self) -> str | None:
        if self.calls >= MAX_CALLS:
            return f"served {self.calls} calls"
        if _descriptors() != self.descriptors:
            return "a descriptor was left open or closed"
        if (threading.active_count(), _threads()) != self.threads:
            return "a thread was left running"
        if self.logging != _logging():
            return "logging was left configured"
        if _resident() > self.resident + MAX_GROWTH:
            return "memory grew"
        return None
