"""The options of memccp, grouped as --help and the man page show them: C-compatible, keys,
bulk, nginx, servers, safety. ``build_parser()`` is all there is; parsing and C-style long
option abbreviations are in :mod:`memccp_py.settings.abbreviations`."""

from __future__ import annotations

import argparse
import os
import sys

from memccp_py import __version__
from memccp_py.choices import (
    DEFAULT_RETRY_TIMEOUT,
    DISTRIBUTIONS,
    HASH_NAMES,
    PROTOCOLS,
)
from memccp_py.settings.manual import DESCRIPTION, MAN_SECTIONS
from memccp_py.status import ExitStatus

DEFAULT_TIMEOUT = 3.0


def _uint32(text: str) -> int:
    """A decimal number from 0 to 2**32-1 (flags and expiry are 32 bits in memcached)."""
    text = text.replace("\0", "")  # abbreviations.DASHES: the value "--"
    digits = text.strip()
    digits = digits[1:] if digits.startswith("+") else digits  # as strtoul reads "+5"
    if not (digits.isascii() and digits.isdigit()) or int(digits) > 0xFFFFFFFF:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number from 0 to 4294967295")
    return int(digits)


def _gzip_flag(text: str) -> int:
    """A flag for --gzip: a number from 1 to 2**32-1 (0 would mark nothing as gzip'd)."""
    flag = _uint32(text)
    if flag == 0:
        raise argparse.ArgumentTypeError("0 marks nothing: nginx would serve the gzip'd bytes "
                                         "as they are (use the memcached_gzip_flag value, e.g. 2)")
    return flag


def _hash_name(text: str) -> str:
    text = text.replace("\0", "")  # abbreviations.DASHES: the value "--"
    if text.lower() not in HASH_NAMES:
        raise argparse.ArgumentTypeError(f"unknown hash {text!r} (one of: {', '.join(HASH_NAMES)})")
    return text.lower()


def _seconds(text: str, low_ok: bool = False) -> float:
    text = text.replace("\0", "")  # abbreviations.DASHES: the value "--"
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (0 <= value if low_ok else 0 < value) or not value <= 3600:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds from 0 to 3600")
    return value


def _rest_seconds(text: str) -> float:
    return _seconds(text, low_ok=True)


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


def forget_terminal_width() -> None:
    """Measure the terminal again at the next --help (a warm helper serves many terminals)."""
    _Formatter.width = None


def _columns() -> int:
    """$COLUMNS, else the terminal's width, else 80 (as shutil.get_terminal_size)."""
    try:
        return int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        try:
            return os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):
            return 80


class Parser(argparse.ArgumentParser):
    """argparse's parser, whose error messages never pass control bytes to the terminal,
    and whose output (--help, --version, usage) goes through ``reporter``, the
    :class:`~memccp_py.report.Reporter` of the call under way, when there is one."""

    reporter = None

    def error(self, message: str):
        from memccp_py.report import printable

        self._print_message(self.format_usage(), sys.stderr)  # not print_usage: stdout if no stderr
        self.exit(ExitStatus.USAGE, f"{self.prog}: error: {printable(message)}\n")

    def _print_message(self, message: str, file=None) -> None:
        if self.reporter is None or not message:
            super()._print_message(message, file)
        else:
            # argparse writes to standard error where there is no standard output (>&-)
            self.reporter.usage(message, to_stdout=file is not None and file is sys.stdout)


def build_parser() -> Parser:
    """The argument parser (tests/test_manpage.py checks man/memccp.1 against it)."""
    parser = Parser(prog="memccp", formatter_class=_Formatter, allow_abbrev=False,
                    description=DESCRIPTION)
    parser.man_short_description = "copy files into memcached under chosen keys"
    parser._manpage = MAN_SECTIONS  # extra sections for argparse-manpage (make man)
    parser.add_argument("files", nargs="*", metavar="FILE",
                        help="files to copy (- is standard input, stored under the key -)")
    _c_compatible(parser.add_argument_group("C memccp options (memcp 1.0.x, Debian's 1.1.4)"))
    _keys(parser.add_argument_group("keys"))
    _bulk(parser.add_argument_group("bulk loading"))
    _nginx(parser.add_argument_group("nginx"))
    _servers(parser.add_argument_group("servers"))
    _safety(parser.add_argument_group("safety"))
    parser.set_defaults(op="set")
    return parser


def _c_compatible(group) -> None:
    add = group.add_argument
    add("-V", "--version", action="version",
        version=f"memccp v{__version__} (memccp-py: binary, meta and text protocols)")
    add("-v", "--verbose", action="store_true", help="print each key stored, and a summary")
    add("-d", "--debug", action="store_true", help="print debugging output and tracebacks")
    add("-q", "--quiet", action="store_true",
        help="print nothing but errors (C memccp prints its store errors too)")
    add("-s", "--servers", metavar="LIST",
        help="servers, as libmemcached reads them: host[:port[:weight]], [ipv6]:port, "
             "/unix/socket, separated by commas (default: $MEMCACHED_SERVERS)")
    add("-u", "--username", metavar="NAME", help="SASL user name")
    add("-p", "--password", metavar="PASSWORD",
        help="SASL password (visible in ps: prefer $MEMCACHED_PASSWORD or --password-file)")
    # As in C memccp, the last of -S/-A/-R given wins.
    for short, name, what in (("-S", "set", "store whether or not the key exists (default)"),
                              ("-A", "add", "store only keys that do not exist yet"),
                              ("-R", "replace", "store only keys that exist already")):
        add(short, f"--{name}", dest="op", action="store_const", const=name, help=what)
    add("-F", "--flag", "--flags", dest="flags", type=_uint32, default=0, metavar="N",
        help="flags stored with each item, decimal, 0 to 4294967295 (default 0)")
    add("-e", "--expire", type=_uint32, default=0, metavar="SECONDS",
        help="expiry: seconds from now, or a unix time if over 30 days (default 0: never)")
    # As in C memccp, --absolute wins over --relative, which wins over --basename.
    add("-.", "--basename", action="store_true", help="key is the file's base name (default)")
    add("-+", "--relative", action="store_true", help="key is the path as given")
    add("-/", "--absolute", action="store_true", help="key is the absolute (real) path")
    add("-H", "--hash", type=_hash_name, default="default", metavar="NAME",
        help=f"key hash for placing keys on servers: {', '.join(HASH_NAMES)}")
    add("-B", "--buffer", action="store_true", help="pipeline the stores (quiet sets, in batches)")
    add("-b", "--binary", action="store_true", help="use the binary protocol (--protocol=binary)")
    add("-n", "--non-blocking", action="store_true", help="accepted for compatibility (timeouts apply)")
    add("-N", "--tcp-nodelay", action="store_true", help="disable Nagle's algorithm (always; accepted)")
    add("-U", "--udp", action="store_true", help="not supported: memccp-py uses TCP or unix sockets")


def _keys(group) -> None:
    add = group.add_argument
    add("--key", metavar="KEY", help="store the single FILE under KEY")
    add("--docroot", metavar="DIR",
        help="key is / plus the path below DIR, the URI a web server rooted at DIR serves")
    add("--prefix", default="", metavar="STR", help="prepend STR to every key (e.g. a host name)")
    add("--slash-basename", action="store_true",
        help="with the base name key, keep the slash before it (/a.gif), as the memccp 1.0.8 "
             "patched with --key did")


def _bulk(group) -> None:
    add = group.add_argument
    add("--files-from", action="append", default=[], metavar="FILE",
        help="read file names from FILE (- for standard input), one a line")
    add("-r", "--recursive", action="store_true",
        help="copy the files below each directory FILE (with --docroot: a whole docroot)")
    add("-0", "--null", action="store_true", help="names in --files-from end with NUL, not newline")


def _index_name(text: str) -> str:
    text = text.replace("\0", "")  # abbreviations.DASHES: the value "--"
    if not text or "/" in text or text in (".", ".."):
        raise argparse.ArgumentTypeError(f"{text!r} is not a file name (as in nginx's index directive)")
    return text


def _nginx(group) -> None:
    add = group.add_argument
    add("--suffix", default="", metavar="STR",
        help='append STR to every key (e.g. ? for nginx keys set as "$uri?$args")')
    add("--index", action="append", default=[], type=_index_name, metavar="NAME",
        help="with --docroot: also store each DIR/NAME under /DIR/ (/NAME under /), as nginx's "
             "index directive would serve it; repeatable, the first NAME found in a "
             "directory wins")
    add("--escape", choices=("none", "nginx"), default="none",
        help="nginx: escape keys as nginx's memcached module does (space, %%, control bytes "
             "become %%XX) (default none)")
    add("--gzip", type=_gzip_flag, metavar="FLAG",
        help="store gzip-compressed bytes when smaller, with FLAG set in the flags "
             "(nginx: memcached_gzip_flag FLAG)")


def _servers(group) -> None:
    add = group.add_argument
    add("--password-file", metavar="FILE", help="read the SASL password from the first line of FILE")
    add("--protocol", choices=PROTOCOLS, metavar="NAME",
        help="auto (default), binary, text or meta. auto speaks binary, and to a server that "
             "rejects it (memcached -B ascii, twemproxy, mcrouter) meta or text for the rest "
             "of the run; SASL (--username) is binary only")
    add("--distribution", choices=DISTRIBUTIONS, default="modula", metavar="NAME",
        help=f"how keys are spread over several servers: {', '.join(DISTRIBUTIONS)} "
             "(default modula, as libmemcached and C memccp)")
    add("--timeout", type=_seconds, default=DEFAULT_TIMEOUT, metavar="SECONDS",
        help="give up on a server that makes no progress for SECONDS: no connection made, "
             "or neither the request under way finished nor 64 KiB sent or received in that "
             "time. A slow but live link never times out; a stalled, trickling or flooding "
             f"peer fails within SECONDS of its last progress (default {DEFAULT_TIMEOUT:g})")
    add("--wait", type=_seconds, metavar="SECONDS",
        help="before copying, wait up to SECONDS until every server answers "
             "(e.g. right after memcached starts); exit 1 if one does not")
    add("--retry-timeout", type=_rest_seconds, default=DEFAULT_RETRY_TIMEOUT, metavar="SECONDS",
        help="after a server fails, the files meant for it fail at once for SECONDS, then it "
             "is tried again, so a restarted server is used again "
             f"(default {DEFAULT_RETRY_TIMEOUT:g}; 0: try at every file)")


def _safety(group) -> None:
    add = group.add_argument
    add("--include", action="append", default=[], metavar="GLOB",
        help="copy only files matching GLOB (repeatable); a GLOB without / matches the file name, "
             "one with / the path below the tree; ** crosses directories (see FILES AND LINKS)")
    add("--exclude", action="append", default=[], metavar="GLOB",
        help="copy no file, and walk no directory, matching GLOB (repeatable; wins over "
             "--include; GLOB/ matches directories only)")
    add("--allow-links-into", action="append", default=[], metavar="DIR",
        help="in a tree, also follow links that lead into DIR (repeatable), e.g. "
             "/usr/share/javascript for Debian's web libraries; any other link out of the "
             "tree is still skipped")
    add("--follow-any-link", action="store_true",
        help="follow a symbolic link whoever owns it (default: only a link owned by root, by "
             "you, or by the owner of what it leads to; links still stay inside a tree; see "
             "FILES AND LINKS)")
    add("--verify", action="store_true",
        help="after the run, read every stored item back (pipelined, in batches) and name each "
             "one missing or not as stored (exit status 1). Even without it, each server whose "
             "eviction counter grew while memccp ran is named with the count (exit status 1)")
    add("--unique-keys", action="store_true",
        help="two files with one key are an error: the later one is not stored (default: a "
             "warning, the last one is stored)")
