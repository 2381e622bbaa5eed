"""Command line of memccp: ``build_parser()`` and ``main()``."""

from __future__ import annotations

import argparse
import os
import sys

from memccp_py import __version__
from memccp_py.errors import MemccpError, UsageError
from memccp_py.names import DISTRIBUTIONS, HASH_NAMES

EXIT_FAILED, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 1, 2, 70, 130
DEFAULT_TIMEOUT = 3.0


def _uint32(text: str) -> int:
    """A decimal number from 0 to 2**32-1 (flags and expiry are 32 bits in memcached)."""
    if not text.strip().isdigit() or int(text) > 0xFFFFFFFF:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number from 0 to 4294967295")
    return int(text)


def _hash_name(text: str) -> str:
    if text.lower() not in HASH_NAMES:
        raise argparse.ArgumentTypeError(f"unknown hash {text!r} (one of: {', '.join(HASH_NAMES)})")
    return text.lower()


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds from 0 to 3600")
    return value


class _Formatter(argparse.HelpFormatter):
    """argparse's formatter, told the width up front: left to itself it imports shutil
    and asks the terminal for every option added, a good part of a run's start-up time."""

    width = None  # measured once, on first use

    def __init__(self, prog: str, **kwargs) -> None:
        if kwargs.get("width") is None:
            if _Formatter.width is None:
                _Formatter.width = _columns() - 2
            kwargs["width"] = _Formatter.width
        super().__init__(prog, **kwargs)


def _columns() -> int:
    """$COLUMNS, else the terminal's width, else 80 (as shutil.get_terminal_size)."""
    try:
        return int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        try:
            return os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):
            return 80


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (the man page is generated from it)."""
    parser = argparse.ArgumentParser(
        prog="memccp", formatter_class=_Formatter,
        description="Copy files into memcached, each under its name, its path or the key you "
                    "choose (--key), with memcached's binary protocol. A drop-in replacement "
                    "for libmemcached's memccp (memcp). The environment variable MEMCACHED_SERVERS "
                    "is the server list when --servers is not given; MEMCACHED_PASSWORD is the "
                    "SASL password when --username is given without --password or "
                    "--password-file. Exit "
                    "status: 0 all files stored, 1 some file or server failed, 2 usage error, "
                    "130 interrupted. Calls are run by a warm helper process of the same user "
                    "(started by the first call, gone after MEMCCP_HELPER_IDLE seconds without "
                    "calls, default 5); MEMCCP_HELPER=off runs each call in its own process.")
    parser.man_short_description = "copy files into memcached under chosen keys"
    add = parser.add_argument
    add("files", nargs="*", metavar="FILE", help="files to copy")
    add("-V", "--version", action="version",
        version=f"memccp v{__version__} (memccp-py, binary protocol via python-binary-memcached)")
    add("-v", "--verbose", action="store_true", help="print each key stored, and a summary")
    add("-d", "--debug", action="store_true", help="print debugging output and tracebacks")
    add("-q", "--quiet", action="store_true", help="print no output, not even errors")
    add("-s", "--servers", metavar="LIST",
        help="servers: host[:port[:weight]], [ipv6]:port, /unix/socket, comma separated "
             "(default: $MEMCACHED_SERVERS)")
    add("-u", "--username", metavar="NAME", help="SASL user name")
    add("-p", "--password", metavar="PASSWORD",
        help="SASL password (visible in ps: prefer $MEMCACHED_PASSWORD or --password-file)")
    add("--password-file", metavar="FILE", help="read the SASL password from the first line of FILE")
    # As in C memccp, the last of -S/-A/-R and of -./-+/-/ given wins.
    for short, name, what in (("-S", "set", "store whether or not the key exists (default)"),
                              ("-A", "add", "store only keys that do not exist yet"),
                              ("-R", "replace", "store only keys that exist already")):
        add(short, f"--{name}", dest="op", action="store_const", const=name, help=what)
    add("-F", "--flag", "--flags", dest="flags", type=_uint32, default=0, metavar="N",
        help="flags stored with each item, 0 to 4294967295 (default 0)")
    add("-e", "--expire", type=_uint32, default=0, metavar="SECONDS",
        help="expiry: seconds from now, or a unix time if over 30 days (default 0: never)")
    add("--key", metavar="KEY", help="store the single FILE under KEY")
    add("-.", "--basename", dest="key_mode", action="store_const", const="basename",
                      help="key is the file's base name (default)")
    add("-+", "--relative", dest="key_mode", action="store_const", const="relative",
                      help="key is the path as given")
    add("-/", "--absolute", dest="key_mode", action="store_const", const="absolute",
                      help="key is the absolute (real) path")
    add("--base", metavar="DIR",
                      help="key is / plus the path relative to DIR, as a web server sees it")
    add("--prefix", default="", metavar="STR", help="prepend STR to every key (e.g. a host name)")
    add("--escape", choices=("none", "nginx"), default="none",
        help="nginx: escape keys as nginx's memcached module does (space, %%, control bytes "
             "become %%XX) (default none)")
    add("--files-from", action="append", default=[], metavar="FILE",
        help="read file names from FILE (- for standard input), one a line")
    add("-r", "--recursive", action="store_true",
        help="copy the files below each directory FILE (with --base: a whole docroot)")
    add("-0", "--null", action="store_true", help="names in --files-from end with NUL, not newline")
    add("--gzip", type=_uint32, metavar="FLAG",
        help="store gzip-compressed bytes when smaller, with FLAG set in the flags "
             "(nginx: memcached_gzip_flag FLAG)")
    add("-H", "--hash", type=_hash_name, default="default", metavar="NAME",
        help=f"key hash for placing keys on servers: {', '.join(HASH_NAMES)}")
    add("--distribution", choices=DISTRIBUTIONS, default="modula", metavar="NAME",
        help=f"how keys are spread over several servers: {', '.join(DISTRIBUTIONS)} "
             "(default modula, as libmemcached and C memccp)")
    add("--timeout", type=_seconds, default=DEFAULT_TIMEOUT, metavar="SECONDS",
        help=f"connect and I/O timeout (default {DEFAULT_TIMEOUT:g})")
    add("-B", "--buffer", action="store_true", help="pipeline the stores (quiet sets, in batches)")
    add("-b", "--binary", action="store_true", help="use the binary protocol (always; accepted)")
    add("-n", "--non-blocking", action="store_true", help="accepted for compatibility (timeouts apply)")
    add("-N", "--tcp-nodelay", action="store_true", help="disable Nagle's algorithm (always; accepted)")
    add("-U", "--udp", action="store_true", help="not supported: memccp-py uses TCP or unix sockets")
    parser.set_defaults(op="set", key_mode="basename")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run memccp with *argv* (default: sys.argv[1:]); return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    err = None if args.quiet else sys.stderr
    try:
        from memccp_py.run import run

        status = run(args, sys.stdin, None if args.quiet else sys.stdout, err)
    except UsageError as exc:
        status = _report(err, exc, EXIT_USAGE)
    except KeyboardInterrupt:
        status = _report(err, "interrupted", EXIT_INTERRUPTED)
    except (MemccpError, OSError) as exc:
        if args.debug:
            raise
        status = _report(err, exc, EXIT_FAILED)
    except Exception as exc:  # a bug: say so in one line; --debug shows the traceback
        if args.debug:
            raise
        status = _report(err, f"internal error: {exc!r} (--debug shows where)", EXIT_INTERNAL)
    try:
        sys.stdout.flush()
    except BrokenPipeError:  # the reader left early (| head); the copy went on regardless
        _silence_stdout()
    return status


def _report(err, message: object, status: int) -> int:
    if err is not None:
        err.write(f"memccp: {message}\n")
    return status


def _silence_stdout() -> None:
    """After EPIPE on stdout, keep Python from complaining again at exit."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass
