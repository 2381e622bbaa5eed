"""Standard output and error as memccp writes them: never the reason a copy stops."""

from __future__ import annotations

import os


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
