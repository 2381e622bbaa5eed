"""One memccp run from parsed options: check them, connect, copy, summarise."""

from __future__ import annotations

import argparse
import io
import os
import sys

from memccp_py.cluster import Cluster
from memccp_py.copier import Options, Summary, copy_files
from memccp_py.errors import UsageError
from memccp_py.servers import parse_servers
from memccp_py.sources import all_paths, make_jobs


def _password(args: argparse.Namespace) -> str | None:
    """The SASL password: --password-file, --password, or $MEMCACHED_PASSWORD with --username."""
    if args.password_file:
        try:
            with open(args.password_file, encoding="utf-8") as handle:
                return handle.readline().rstrip("\r\n")
        except OSError as exc:
            raise UsageError(f"--password-file {args.password_file}: {exc.strerror}") from None
    if args.password is not None:
        return args.password
    return os.environ.get("MEMCACHED_PASSWORD") if args.username else None


def _check(args: argparse.Namespace, password: str | None) -> None:
    if args.udp:
        raise UsageError("--udp is not supported: memccp-py stores over TCP or a unix socket "
                         "with the binary protocol; drop -U")
    if not args.files and not args.files_from:
        raise UsageError("no files given (see memccp --help)")
    if args.key is not None and (len(args.files) != 1 or args.files_from):
        raise UsageError(f"--key names one file, {len(args.files)} given"
                         + (" and --files-from" if args.files_from else ""))
    if args.key is not None and args.base is not None:
        raise UsageError("--key and --base cannot be used together")
    if bool(args.username) != bool(password):
        raise UsageError("SASL needs both --username and a password "
                         "(--password, --password-file or MEMCACHED_PASSWORD)")
    if args.files_from.count("-") > 1:
        raise UsageError("--files-from=- can be given once")
    if args.index and args.base is None:
        raise UsageError("--index needs --base: only then are keys URIs with directories")


def _open_lists(names: list[str], stdin: io.TextIOBase) -> list[io.BufferedIOBase]:
    streams = []
    for name in names:
        if name == "-":
            streams.append(stdin.buffer)
            continue
        try:
            streams.append(open(name, "rb"))
        except OSError as exc:
            raise UsageError(f"--files-from {name}: {exc.strerror}") from None
    return streams


def run(args: argparse.Namespace, stdin: io.TextIOBase, out: io.TextIOBase | None, err: io.TextIOBase | None) -> int:
    """Copy what *args* asks for; return the exit status (0 all stored, 1 not)."""
    password = _password(args)
    _check(args, password)
    spec = args.servers if args.servers is not None else os.environ.get("MEMCACHED_SERVERS", "")
    servers = parse_servers(spec)
    if args.debug:
        import logging

        logging.basicConfig(stream=sys.stderr, level=logging.DEBUG,
                            format="memccp: debug: %(name)s: %(message)s")
        if err is not None:
            err.write(f"memccp: debug: servers {', '.join(map(str, servers))}; "
                      f"distribution {args.distribution}, hash {args.hash}\n")
    if args.wait is not None:
        from memccp_py.wait import wait_for_servers

        wait_for_servers(servers, args.wait, args.timeout)
    cluster = Cluster(servers, distribution=args.distribution, hash_name=args.hash,
                      timeout=args.timeout, username=args.username, password=password)
    lists = _open_lists(args.files_from, stdin)
    jobs = make_jobs(all_paths(args.files, lists, args.null, args.recursive),
                     key=None if args.key is None else os.fsencode(args.key),
                     mode=args.key_mode, base=args.base, prefix=os.fsencode(args.prefix),
                     escape=args.escape, suffix=os.fsencode(args.suffix), index=args.index)
    options = Options(op=args.op, flags=args.flags, exptime=args.expire,
                      buffered=args.buffer or bool(args.files_from) or args.recursive
                      or args.base is not None,
                      gzip_flag=args.gzip, verbose=args.verbose, warn_keys=args.escape != "nginx",
                      progress=err is not None and err.isatty() and not args.verbose)
    try:
        summary = copy_files(jobs, cluster, options, out, err)
    finally:
        cluster.close()
        for stream in lists:
            if stream is not stdin.buffer:
                stream.close()
    if args.verbose and err is not None:
        err.write(_summary_line(summary))
    return 0 if summary.failed == 0 and summary.files == summary.stored else 1


def _summary_line(s: Summary) -> str:
    return (f"memccp: {s.files} file{'s' if s.files != 1 else ''}, {s.stored} stored "
            f"({s.bytes} bytes), {s.failed} failed\n")
