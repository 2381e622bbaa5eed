"""Command line of memccp: ``main()`` parses (:mod:`memccp_py.definition`), runs and maps
what went wrong to the exit statuses the manual documents."""

from __future__ import annotations

import os
import sys

from memccp_py.definition import build_parser
from memccp_py.errors import MemccpError, UsageError
from memccp_py.interrupt import interruptible
from memccp_py.keys import printable
from memccp_py.longopts import AbbreviationError, expand, parse, restore
from memccp_py.status import ExitStatus
from memccp_py.streams import Guarded, fill_closed_descriptors

__all__ = ["build_parser", "main"]



def main(argv: list[str] | None = None, *, parser=None, note: str | None = None) -> int:
    """Run memccp with *argv* (default: sys.argv[1:]); return the exit status. *parser*: one
    built already (the warm helper's); *note*: how the call runs, said with --debug."""
    if parser is None:
        parser = build_parser()
    try:
        try:  # options and files in any order, as GNU getopt allows; all after -- are files
            options, files = expand(sys.argv[1:] if argv is None else argv, parser)
            args = restore(parse(parser, options))
            args.files += files
        except AbbreviationError as exc:
            parser.error(str(exc))
    except SystemExit as exc:
        return int(exc.code or 0)
    fill_closed_descriptors()
    # -q silences everything but errors, as C memccp keeps its store errors
    err = Guarded(sys.stderr)
    out = Guarded(sys.stdout, lambda reason: err.write(
        f"memccp: standard output: {reason} (the copy goes on)\n"))
    if args.debug and note:
        err.write(f"memccp: debug: {note}\n")
    try:
        from memccp_py.run import run
        from memccp_py.settings import read_settings

        warn = None if args.quiet else (lambda text: err.write(f"memccp: warning: {printable(text)}\n"))
        settings = read_settings(args, os.environ, warn)
        with interruptible():
            status = run(settings, sys.stdin, None if args.quiet else out, err)
    except UsageError as exc:
        status = _report(err, exc, ExitStatus.USAGE)
    except KeyboardInterrupt:
        status = _report(err, "interrupted", ExitStatus.INTERRUPTED)
    except MemoryError:
        status = _report(err, "out of memory: the run stopped", ExitStatus.FAILURE)
    except (MemccpError, OSError) as exc:
        if args.debug:
            raise
        status = _report(err, exc, ExitStatus.FAILURE)
    except Exception as exc:  # a bug: say so in one line; --debug shows the traceback
        if args.debug:
            raise
        status = _report(err, f"internal error: {exc!r} (--debug shows where)", ExitStatus.INTERNAL)
    out.flush()  # the reader may have left early (| head); the copy went on regardless
    return status


def _report(err, message: object, status: int) -> int:
    if err is not None:
        err.write(f"memccp: {printable(str(message))}\n")
    return status
