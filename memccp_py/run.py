"""One memccp run from parsed options: check them, connect, copy, summarise."""

from __future__ import annotations

import argparse
import io
import os
import stat
import sys
import time
from collections import abc

from memccp_py.checks import report_evictions, verify
from memccp_py.cluster import Cluster
from memccp_py.copier import Options, Summary, copy_files
from memccp_py.definition import key_mode
from memccp_py.errors import MemccpError, UsageError
from memccp_py.keys import printable, show
from memccp_py.servers import parse_servers
from memccp_py.reading import Stdin, reason
from memccp_py.resolve import Refused, Scope
from memccp_py.selection import Selection
from memccp_py.sources import all_paths, make_jobs

#: memcached reads an expiry over this many seconds (30 days) as a unix time.
MAX_RELATIVE_EXPIRY = 30 * 24 * 3600


#: A password file's first line may be this long (bytes): it is read no further.
MAX_PASSWORD_BYTES = 4096


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


def _password(args: argparse.Namespace, warn: abc.Callable[[str], None] | None) -> str | None:
    """The SASL password: --password-file, --password, or $MEMCACHED_PASSWORD with --username."""
    if args.password_file:
        return _read_password_file(args.password_file, warn)
    password = args.password
    if password is None and args.username:
        password = os.environ.get("MEMCACHED_PASSWORD")
    try:
        (password or "").encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError("the password is not valid UTF-8 (SASL PLAIN needs UTF-8)") from None
    return password


def _check(args: argparse.Namespace, password: str | None) -> None:
    if args.udp:
        raise UsageError("--udp is not supported: memccp-py stores over TCP or a unix socket "
                         "with the binary protocol; drop -U")
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
    if args.base == "":
        raise UsageError("--docroot is empty (an unset variable?): name a directory")
    if args.key is not None and args.base is not None:
        raise UsageError("--key and --docroot cannot be used together")
    if args.username and not password:
        raise UsageError("SASL needs both --username and a password "
                         "(--password, --password-file or MEMCACHED_PASSWORD)")
    if args.files_from.count("-") + args.files.count("-") > 1:
        raise UsageError("standard input (-) can be read once: as one FILE or one --files-from")
    if args.index and args.base is None:
        raise UsageError("--index needs --docroot: only then are keys URIs with directories")


def _open_lists(names: list[str], stdin: io.TextIOBase | None, scope: Scope) -> list[io.BufferedIOBase]:
    """The --files-from streams: standard input, or a file or a pipe opened by the link
    rule, without blocking on a FIFO that has no writer yet (it then reads as empty)."""
    streams = []
    for name in names:
        if name == "-":
            if stdin is None:
                raise MemccpError("--files-from -: standard input is closed")
            streams.append(stdin.buffer)
            continue
        what = f"--files-from {show(os.fsencode(name))}"
        try:
            node = scope.resolve(None, name)
            mode = node.st.st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
                raise UsageError(f"{what}: not a regular file or a pipe")  # /dev/zero: endless
            fd = node.reopen(os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
            if stat.S_ISFIFO(mode):  # read as it is: no writer, its end at once; else
                streams.append(open(fd, "rb", buffering=0))  # None until names come
            else:
                os.set_blocking(fd, True)
                streams.append(open(fd, "rb"))
        except (OSError, Refused) as exc:
            raise UsageError(f"{what}: {reason(exc)}") from None
    return streams


def _scope(args: argparse.Namespace) -> Scope:
    """The link rule of the run; with --docroot, bounded by the docroot, resolved once now
    under that rule: the tree is what it resolves to."""
    scope = Scope(follow_any=args.follow_any_link)
    allowed = []
    for directory in args.allow_links_into:
        what = f"--allow-links-into {show(os.fsencode(directory))}"
        try:
            node = scope.resolve(None, directory)
        except (OSError, Refused) as exc:
            raise UsageError(f"{what}: {reason(exc)}") from None
        if not node.is_dir:
            raise UsageError(f"{what}: Not a directory")
        allowed.append(node)
    scope = Scope(follow_any=args.follow_any_link, allowed=tuple(allowed))
    if args.base is None:
        return scope
    what = f"--docroot {show(os.fsencode(args.base))}"
    try:
        root = scope.resolve(None, args.base)
    except (OSError, Refused) as exc:
        raise MemccpError(f"{what}: {reason(exc)}") from None
    if not root.is_dir:
        raise MemccpError(f"{what}: Not a directory")
    return scope.tree(root, args.base)


def run(args: argparse.Namespace, stdin: io.TextIOBase | None, out: io.TextIOBase | None, err: io.TextIOBase) -> int:
    """Copy what *args* asks for; return the exit status (0 all stored, 1 not)."""
    warn = None if args.quiet else (lambda text: err.write(f"memccp: warning: {printable(text)}\n"))
    password = _password(args, warn)
    if password and not args.username:
        if warn:
            warn("a password without --username is ignored (as C memccp ignores it)")
        password = None
    _check(args, password)
    scope = _scope(args)  # the docroot, resolved once, before any server is reached
    spec = args.servers if args.servers is not None else os.environ.get("MEMCACHED_SERVERS", "")
    servers = parse_servers(spec, warn)
    if args.debug:
        import logging

        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_PrintableFormatter("memccp: debug: %(name)s: %(message)s"))
        logging.basicConfig(level=logging.DEBUG, handlers=[handler])
        err.write(printable(f"memccp: debug: servers {', '.join(map(str, servers))}; "
                            f"distribution {args.distribution}, hash {args.hash}") + "\n")
    if args.wait is not None:
        from memccp_py.wait import wait_for_servers

        wait_for_servers(servers, args.wait, args.timeout)
    cluster = Cluster(servers, distribution=args.distribution, hash_name=args.hash,
                      timeout=args.timeout, username=args.username, password=password,
                      retry_timeout=args.retry_timeout)
    lists = _open_lists(args.files_from, stdin, Scope(follow_any=args.follow_any_link))
    selection = Selection(args.include, args.exclude) if args.include or args.exclude else None
    files = [Stdin(getattr(stdin, "buffer", None)) if f == "-" else f for f in args.files]
    jobs = make_jobs(all_paths(files, lists, args.null, args.recursive, selection, args.base,
                               scope),
                     key=None if args.key is None else os.fsencode(args.key),
                     mode=key_mode(args), base=args.base, prefix=os.fsencode(args.prefix),
                     escape=args.escape, unique_keys=args.unique_keys,
                     suffix=os.fsencode(args.suffix), index=args.index)
    options = Options(op=args.op, flags=args.flags, exptime=args.expire,
                      buffered=args.buffer or bool(args.files_from) or args.recursive
                      or args.base is not None,
                      gzip_flag=args.gzip, verbose=args.verbose, warnings=not args.quiet,
                      warn_keys=args.escape != "nginx" and not args.quiet,
                      progress=err.isatty() and not args.verbose and not args.quiet,
                      verify=args.verify)
    try:
        summary = copy_files(jobs, cluster, options, out, err)
        evicted = report_evictions(cluster, err)
        unverified = verify(cluster, summary.written, err) if args.verify else 0
    finally:
        cluster.close()
        for stream in lists:
            if stream is not getattr(stdin, "buffer", None):
                stream.close()
    if args.verbose and not args.quiet:
        err.write(_summary_line(summary))
    if args.verify and args.verbose and not args.quiet:
        err.write(f"memccp: verified {sum(map(len, summary.written.values()))} items, "
                  f"{unverified} missing or different\n")
    ok = summary.failed == 0 and summary.files == summary.stored and not evicted and not unverified
    return 0 if ok else 1


class _PrintableFormatter:
    """A logging formatter whose lines never carry control bytes (a user name, a server's
    message): bmemcached logs what it is given."""

    def __init__(self, fmt: str) -> None:
        import logging

        self._inner = logging.Formatter(fmt)

    def format(self, record) -> str:
        return printable(self._inner.format(record))


def _summary_line(s: Summary) -> str:
    return (f"memccp: {s.files} file{'s' if s.files != 1 else ''}, {s.stored} stored "
            f"({s.bytes} bytes), {s.failed} failed\n")
