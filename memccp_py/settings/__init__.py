"""The settings of one run: the command line and the environment, checked together, frozen.

:func:`parse_command_line` reads argv as C memccp's getopt does; :func:`read_settings` is
the only reader of argparse's namespace after that: the
password (--password-file, --password, $MEMCACHED_PASSWORD), the server list
(--servers, $MEMCACHED_SERVERS), the key mode, the protocol and every check that
involves several options happen here, once; the run reads :class:`Settings` alone. What
is said (-q, -v, --debug) is the Reporter's to know: the command line tells it first.
"""

from __future__ import annotations

import argparse
import os
import stat
import time
from collections import abc
from typing import NamedTuple

from memccp_py.errors import UsageError
from memccp_py.placement.servers import Server, parse_servers
from memccp_py.report import show
from memccp_py.settings.abbreviations import AbbreviationError, expand, parse, restore

#: memcached reads an expiry over this many seconds (30 days) as a unix time.
MAX_RELATIVE_EXPIRY = 30 * 24 * 3600
#: A password file's first line may be this long (bytes): it is read no further.
MAX_PASSWORD_BYTES = 4096


class Settings(NamedTuple):
    """Everything a run needs to know, checked; frozen. (A NamedTuple, not a dataclass:
    dataclasses imports inspect, a tenth of a cold run's start.)"""

    # what to copy, and under which keys
    files: tuple[str, ...]
    files_from: tuple[str, ...]
    null: bool
    recursive: bool
    key: bytes | None
    key_mode: str  # basename, slash-basename, relative or absolute
    docroot: str | None
    prefix: bytes
    suffix: bytes
    index: tuple[str, ...]
    escape: str
    unique_keys: bool
    include: tuple[str, ...]
    exclude: tuple[str, ...]
    allow_links_into: tuple[str, ...]
    follow_any_link: bool
    # how items are stored
    op: str
    flags: int
    expire: int
    gzip_flag: int | None
    buffered: bool
    verify: bool
    # where
    servers: tuple[Server, ...]
    distribution: str
    hash_name: str
    protocol: str
    timeout: float | None
    wait: float | None
    retry_timeout: float
    username: str | None
    password: str | None  # never shown: see __repr__

    def __repr__(self) -> str:
        shown = (f"{name}={value!r}" for name, value in zip(self._fields, self) if name != "password")
        return f"Settings({', '.join(shown)})"


def parse_command_line(argv: list[str], parser: argparse.ArgumentParser) -> argparse.Namespace:
    """*argv* read as C memccp's getopt reads it: options and files in any order, long
    options abbreviated, all after ``--`` files. SystemExit for --help, --version and usage
    errors, which the parser has printed (its status: the exit status)."""
    try:
        options, files = expand(argv, parser)
        args = restore(parse(parser, options))
    except AbbreviationError as exc:
        parser.error(str(exc))
    args.files += files
    return args


def read_settings(args: argparse.Namespace, environ: abc.Mapping[str, str],
                  warn: abc.Callable[[str], None] | None) -> Settings:
    """The Settings *args* and *environ* ask for; UsageError for what cannot go together.
    *warn*: said about what is accepted but probably not meant (None: -q)."""
    password = _password(args, environ, warn)
    if password and not args.username:
        if warn:
            warn("a password without --username is ignored (as C memccp ignores it)")
        password = None
    protocol = args.protocol or ("binary" if args.binary else "auto")
    _check(args, password, protocol)
    spec = args.servers if args.servers is not None else environ.get("MEMCACHED_SERVERS", "")
    servers = parse_servers(spec, warn)
    return Settings(
        files=tuple(args.files), files_from=tuple(args.files_from), null=args.null,
        recursive=args.recursive, key=None if args.key is None else os.fsencode(args.key),
        key_mode=_key_mode(args), docroot=args.docroot, prefix=os.fsencode(args.prefix),
        suffix=os.fsencode(args.suffix), index=tuple(args.index), escape=args.escape,
        unique_keys=args.unique_keys, include=tuple(args.include), exclude=tuple(args.exclude),
        allow_links_into=tuple(args.allow_links_into), follow_any_link=args.follow_any_link,
        op=args.op, flags=args.flags, expire=args.expire, gzip_flag=args.gzip,
        buffered=args.buffer or bool(args.files_from) or args.recursive or args.docroot is not None,
        verify=args.verify, servers=tuple(servers), distribution=args.distribution,
        hash_name=args.hash, protocol=protocol, timeout=args.timeout, wait=args.wait,
        retry_timeout=args.retry_timeout, username=args.username, password=password)


def _key_mode(args: argparse.Namespace) -> str:
    """The key mode the options ask for, with C memccp's precedence."""
    if args.absolute:
        return "absolute"
    if args.relative:
        return "relative"
    return "slash-basename" if args.slash_basename else "basename"


def _read_password_file(name: str, warn: abc.Callable[[str], None] | None) -> str:
    """The first line of the password file *name*, read as bytes and never shown."""
    what = f"--password-file {show(os.fsencode(name))}"
    try:
        with open(name, "rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            if stat.S_ISDIR(mode):
                raise UsageError(f"{what}: Is a directory")
            if stat.S_ISREG(mode) and mode & 0o077 and warn is not None:
                warn(f"{what} can be read by others than its owner "
                     f"(mode {stat.S_IMODE(mode):04o}): chmod 600 it")
            head = handle.read(MAX_PASSWORD_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"{what}: {exc.strerror or exc}") from None
    line, newline, _ = head.partition(b"\n")
    if not newline and len(head) > MAX_PASSWORD_BYTES:
        raise UsageError(f"{what}: its first line is longer than {MAX_PASSWORD_BYTES} bytes")
    try:
        return line.rstrip(b"\r").decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{what}: the password is not valid UTF-8 (SASL PLAIN needs UTF-8)") from None


def _password(args: argparse.Namespace, environ: abc.Mapping[str, str],
              warn: abc.Callable[[str], None] | None) -> str | None:
    """The SASL password: --password-file, --password, or $MEMCACHED_PASSWORD with --username."""
    if args.password_file:
        return _read_password_file(args.password_file, warn)
    password = args.password
    if password is None and args.username:
        password = environ.get("MEMCACHED_PASSWORD")
    try:
        (password or "").encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError("the password is not valid UTF-8 (SASL PLAIN needs UTF-8)") from None
    return password


def _check(args: argparse.Namespace, password: str | None, protocol: str) -> None:
    """UsageError for options that cannot go together, or make no sense."""
    if args.udp:
        raise UsageError("--udp is not supported: memccp-py stores over TCP or a unix socket; "
                         "drop -U")
    if args.binary and args.protocol not in (None, "binary"):
        raise UsageError(f"-b (--binary) and --protocol={args.protocol} contradict each other")
    if args.username and protocol in ("text", "meta"):
        raise UsageError(f"SASL (--username) needs the binary protocol, not --protocol="
                         f"{protocol}: memcached refuses SASL over text")
    if not args.files and not args.files_from:
        raise UsageError("no files given (see memccp --help)")
    if args.key is not None and (len(args.files) != 1 or args.files_from or args.recursive):
        raise UsageError(f"--key names one file, {len(args.files)} given"
                         + (" and --files-from" if args.files_from else "")
                         + (" with --recursive" if args.recursive else ""))
    if args.expire > MAX_RELATIVE_EXPIRY and args.expire <= time.time():
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(args.expire))
        raise UsageError(f"--expire {args.expire} is over 30 days, so memcached reads it as a "
                         f"unix time, {when}, which is past: every item would expire at once")
    if args.docroot == "":
        raise UsageError("--docroot is empty (an unset variable?): name a directory")
    if args.key is not None and args.docroot is not None:
        raise UsageError("--key and --docroot cannot be used together")
    if args.username and not password:
        raise UsageError("SASL needs both --username and a password "
                         "(--password, --password-file or MEMCACHED_PASSWORD)")
    if args.files_from.count("-") + args.files.count("-") > 1:
        raise UsageError("standard input (-) can be read once: as one FILE or one --files-from")
    if args.index and args.docroot is None:
        raise UsageError("--index needs --docroot: only then are keys URIs with directories")
