"""Command line of memccp: ``main()`` reads the command line into Settings
(:mod:`memccp_py.settings`), runs, and maps what went wrong to the exit statuses the manual
documents."""

from __future__ import annotations

import os
import sys

from memccp_py.errors import MemccpError, UsageError
from memccp_py.interrupt import interruptible
from memccp_py.report import Reporter, fill_closed_descriptors
from memccp_py.settings import parse_command_line, read_settings
from memccp_py.settings.definition import build_parser
from memccp_py.status import ExitStatus

__all__ = ["build_parser", "main"]


def main(argv: list[str] | None = None, *, parser=None, note: str | None = None) -> int:
    """Run memccp with *argv* (default: sys.argv[1:]); return the exit status. *parser*: one
    built already (the warm helper's); *note*: how the call runs, said with --debug."""
    fill_closed_descriptors()
    reporter = Reporter(sys.stdout, sys.stderr)
    if parser is None:
        parser = build_parser()
    parser.reporter = reporter  # --help, --version and usage errors are said through it too
    try:
        args = parse_command_line(sys.argv[1:] if argv is None else argv, parser)
    except SystemExit as exc:  # --help, --version (printed now: a full disk is seen) or usage
        reporter.finish()
        status = int(exc.code or 0)
        return ExitStatus.FAILURE if status == 0 and reporter.output_lost else status
    reporter.levels(quiet=args.quiet, verbose=args.verbose, debug=args.debug)
    if note:
        reporter.debug(note)
    try:
        from memccp_py.run import run

        settings = read_settings(args, os.environ, reporter.warning)
        with interruptible(), reporter.libraries_logged():
            status = run(settings, sys.stdin, reporter)
    except UsageError as exc:
        status = _failed(reporter, exc, ExitStatus.USAGE)
    except KeyboardInterrupt:
        status = _failed(reporter, "interrupted", ExitStatus.INTERRUPTED)
    except MemoryError:
        status = _failed(reporter, "out of memory: the run stopped", ExitStatus.FAILURE)
    except (MemccpError, OSError) as exc:
        if reporter.debugging:
            raise
        status = _failed(reporter, exc, ExitStatus.FAILURE)
    except Exception as exc:  # a bug: say so in one line; --debug shows the traceback
        if reporter.debugging:
            raise
        status = _failed(reporter, f"internal error: {exc!r} (--debug shows where)", ExitStatus.INTERNAL)
    reporter.finish()  # the reader may have left early (| head); the copy went on regardless
    return status


def _failed(reporter: Reporter, message: object, status: int) -> int:
    reporter.error(message)
    return status
