"""Every byte memccp writes: one :class:`Reporter` owns standard output and error.

Standard output carries only what -v lists (the keys stored, one a line); standard error
carries errors (always), warnings (not under -q), notes and the summary (-v, not -q),
debugging lines (--debug) and, on a terminal, a progress line. Every text is escaped
before it is written: control characters become ``\\xNN``, so nothing a file name, a key
or a server says reaches the terminal raw. Neither stream ever stops the copy: once
writing to one fails, it goes silent.
"""

from __future__ import annotations

import os
import time
from collections import abc
from contextlib import contextmanager

#: Control characters (C0, DEL, C1) as \\xNN: no terminal sequence passes through output.
_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))}


def printable(text: str) -> str:
    """*text* with its control characters (ESC, BEL, newline, ...) written as \\xNN."""
    return text.translate(_CONTROLS)


def show(data: bytes) -> str:
    """Printable form of a key or file name: undecodable bytes and control characters as \\xNN."""
    return data.decode("utf-8", "backslashreplace").translate(_CONTROLS)


def fill_closed_descriptors() -> None:
    """Open /dev/null on a closed standard descriptor (>&-), so that no socket or file
    opened later takes its number and receives what is meant for the terminal."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            try:
                null = os.open(os.devnull, os.O_RDWR)
            except OSError:
                return
            if null != fd:
                os.dup2(null, fd)
                os.close(null)


class Guarded:
    """A text stream that, once writing to it fails (reader gone, disk full, closed),
    goes silent instead of stopping the copy; its descriptor then points to /dev/null
    so that nothing complains again at exit."""

    def __init__(self, stream, complain=None) -> None:
        self._stream = stream
        self._complain = complain  # told why, unless the reader just left (EPIPE)

    def write(self, text: str) -> None:
        if self._stream is not None:
            try:
                self._stream.write(text)
            except (OSError, ValueError) as exc:
                self._give_up(exc)

    def flush(self) -> None:
        if self._stream is not None:
            try:
                self._stream.flush()
            except (OSError, ValueError) as exc:
                self._give_up(exc)

    def isatty(self) -> bool:
        try:
            return self._stream is not None and self._stream.isatty()
        except (OSError, ValueError):
            return False

    def _give_up(self, exc: Exception) -> None:
        stream, self._stream = self._stream, None
        if self._complain is not None and isinstance(exc, OSError) and exc.strerror \
                and not isinstance(exc, BrokenPipeError):
            self._complain(exc.strerror)
        try:
            null = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(null, stream.fileno())
            finally:
                os.close(null)
        except (OSError, ValueError, AttributeError):
            pass


class Reporter:
    """What memccp says, and whether it says it (-q, -v, --debug).

    *out*, *err*: the text streams (None: that stream is closed). *progress*: keep a
    progress line on *err*; None: when *err* is a terminal and neither -v nor -q is given.
    """

    def __init__(self, out, err, *, quiet: bool = False, verbose: bool = False, debug: bool = False,
                 progress: bool | None = None) -> None:
        self._err = Guarded(err)
        self._out = Guarded(out, self._stdout_failed)
        self._progress_at = 0.0
        self._progress_width = 0
        self._copying = False
        #: whether writing to standard output failed (a full disk; not a reader that left: | head)
        self.output_lost = False
        self.levels(quiet=quiet, verbose=verbose, debug=debug, progress=progress)

    def levels(self, *, quiet: bool, verbose: bool, debug: bool, progress: bool | None = None) -> None:
        """What to say, as -q, -v and --debug ask (set again once the command line is read:
        until then, errors and warnings only)."""
        self.quiet, self.verbose, self.debugging = quiet, verbose and not quiet, debug
        if progress is None:
            progress = not verbose and not quiet and self._err.isatty()
        #: whether the copy should report its counts (see :meth:`progress`)
        self.shows_progress = progress

    # -- standard error ---------------------------------------------------------
    def _erase_progress(self) -> None:
        if self._progress_width:
            self._err.write("\r" + " " * self._progress_width + "\r")
            self._progress_width = 0

    def _line(self, text: str) -> None:
        self._erase_progress()  # a line of its own, not over the progress line
        self._err.write(text)

    def error(self, message: object, path: str | None = None) -> None:
        """``memccp: [PATH: ]MESSAGE``, always (also under -q)."""
        where = "" if path is None else show(os.fsencode(path)) + ": "
        self._line(f"memccp: {where}{printable(str(message))}\n")

    def warning(self, message: str, path: str | None = None) -> None:
        """``memccp: [PATH: ]warning: MESSAGE``, unless -q."""
        if not self.quiet:
            self.error(f"warning: {message}", path)

    def note(self, message: str) -> None:
        """``memccp: MESSAGE`` under -v (not with -q): something that is no fault."""
        if self.verbose:
            self.error(message)

    def debug(self, message: str) -> None:
        """``memccp: debug: MESSAGE`` under --debug."""
        if self.debugging:
            self.error(f"debug: {message}")

    def log_handler(self):
        """A logging handler for --debug: the libraries' log lines on standard error, escaped."""
        import logging

        class Escaped(logging.Formatter):
            def format(self, record) -> str:
                return printable(super().format(record))

        handler = logging.StreamHandler(self._err)
        handler.setFormatter(Escaped("memccp: debug: %(name)s: %(message)s"))
        return handler

    @contextmanager
    def libraries_logged(self) -> abc.Iterator[None]:
        """Under --debug, the libraries' log lines (bmemcached's) said for the length of the
        block, and no longer after it: a warm helper's worker serves its next call with
        no handler left writing to this call's standard error."""
        if not self.debugging:
            yield
            return
        import logging

        root, handler = logging.getLogger(), self.log_handler()
        level = root.level
        root.addHandler(handler)
        root.setLevel(logging.DEBUG)
        try:
            yield
        finally:
            root.removeHandler(handler)
            root.setLevel(level)

    def _stdout_failed(self, reason: str) -> None:
        self.output_lost = True
        self._line(f"memccp: standard output: {reason}{' (the copy goes on)' if self._copying else ''}\n")

    # -- the copy ---------------------------------------------------------------
    def begin(self) -> None:
        """The copy starts: the first progress line comes a second later."""
        self._copying = True
        if self.shows_progress:
            self._progress_at = time.monotonic() + 1.0

    def progress(self, files: int, stored: int, nbytes: int, failed: int) -> None:
        """Redraw the progress line with these counts, at most twice a second."""
        if not self.shows_progress or time.monotonic() < self._progress_at:
            return
        self._progress_at = time.monotonic() + 0.5
        line = f"memccp: {files} files, {stored} stored ({nbytes >> 10} KiB), {failed} failed"
        self._err.write("\r" + line.ljust(self._progress_width))
        self._err.flush()
        self._progress_width = len(line)

    def end(self) -> None:
        """The copy has ended: the progress line is erased."""
        if self._progress_width:
            self._erase_progress()
            self._err.flush()

    def stored(self, key: bytes) -> None:
        """Under -v (not with -q), *key* on standard output: a file is stored under it."""
        if self.verbose:
            self._out.write(show(key) + "\n")

    def confirmed(self) -> None:
        """A batch of stores is confirmed: what -v listed goes out now."""
        if self.verbose:
            self._out.flush()

    def summary(self, files: int, stored: int, nbytes: int, failed: int) -> None:
        """Under -v (not with -q), the run's counts."""
        self.note(f"{files} file{'s' if files != 1 else ''}, {stored} stored ({nbytes} bytes), "
                  f"{failed} failed")

    # -- anything else ----------------------------------------------------------
    def usage(self, text: str, to_stdout: bool) -> None:
        """What the option parser prints (--help, --version, usage), as it is."""
        (self._out if to_stdout else self._err).write(text)

    def finish(self) -> None:
        """The run is over: standard output is flushed (its reader may be gone: no matter)."""
        self._out.flush()
        self._err.flush()
