"""Ctrl-C (SIGINT), and any signal with a handler, while a run waits for something to read.

Python runs a signal's handler between two steps of its own code, not inside a system call:
a signal that comes after the last such step before a blocking read (names from a pipe,
standard input that is no terminal) leaves its handler waiting until that read returns, and
for names from a pipe that stays open that is never. :func:`wait_readable` waits in poll()
for the descriptor and for the wake-up pipe that the interpreter writes to on every such
signal (signal.set_wakeup_fd): a signal that came first, or comes meanwhile, ends the wait,
and its handler runs (Ctrl-C: KeyboardInterrupt, "interrupted", exit 130)."""

from __future__ import annotations

import os
import select
import signal
from collections import abc
from contextlib import contextmanager

_wake: int | None = None  # the wake-up pipe's end to read, while a run has one


@contextmanager
def interruptible() -> abc.Iterator[None]:
    """For one run, the wake-up pipe of :func:`wait_readable`: only the main thread can have
    one (elsewhere the run goes on without it)."""
    global _wake
    outer, pipe = _wake, os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        previous = signal.set_wakeup_fd(pipe[1])
    except ValueError:  # not the main thread
        previous = None
    try:
        if previous is not None:
            _wake = pipe[0]
        yield
    finally:
        _wake = outer
        if previous is not None:
            signal.set_wakeup_fd(previous)
        for fd in pipe:
            os.close(fd)


def pollable(stream) -> int | None:
    """The descriptor to wait for before reading *stream*; None if it has none (a stream in
    memory) or is a terminal: a background job reading its terminal must be stopped by
    SIGTTIN, which read() gets and poll() does not."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
        return None
    return None if os.isatty(fd) else fd


def wait_readable(fd: int) -> None:
    """Return once *fd* has something to read (or its end, or an error to report); a signal
    that came before the wait, or comes during it, has its handler run (Ctrl-C: raised)."""
    wake = _wake
    if wake is None:
        return
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    poller.register(wake, select.POLLIN)
    while True:
        ready = poller.poll()  # returning, the interpreter runs the handlers of what came
        if any(which == fd for which, _ in ready):
            return
        _drain(wake)


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except (BlockingIOError, InterruptedError):
        pass
