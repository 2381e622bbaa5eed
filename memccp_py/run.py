"""One memccp run from its Settings: resolve the docroot, connect, copy, summarise."""

from __future__ import annotations

import io
import os
import stat

from memccp_py.copier import Options, copy_files
from memccp_py.errors import MemccpError, UsageError
from memccp_py.files.reading import Stdin, reason
from memccp_py.files.resolve import Refused, Scope
from memccp_py.files.selection import Selection
from memccp_py.files.sources import all_paths, make_jobs
from memccp_py.placement.cluster import Cluster
from memccp_py.report import Reporter, show
from memccp_py.settings import Settings
from memccp_py.status import ExitStatus
from memccp_py.verify import report_evictions, verify


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


def _scope(settings: Settings) -> Scope:
    """The link rule of the run; with --docroot, bounded by the docroot, resolved once now
    under that rule: the tree is what it resolves to."""
    scope = Scope(follow_any=settings.follow_any_link)
    allowed = []
    for directory in settings.allow_links_into:
        what = f"--allow-links-into {show(os.fsencode(directory))}"
        try:
            node = scope.resolve(None, directory)
        except (OSError, Refused) as exc:
            raise UsageError(f"{what}: {reason(exc)}") from None
        if not node.is_dir:
            raise UsageError(f"{what}: Not a directory")
        allowed.append(node)
    scope = Scope(follow_any=settings.follow_any_link, allowed=tuple(allowed))
    if settings.docroot is None:
        return scope
    what = f"--docroot {show(os.fsencode(settings.docroot))}"
    try:
        root = scope.resolve(None, settings.docroot)
    except (OSError, Refused) as exc:
        raise MemccpError(f"{what}: {reason(exc)}") from None
    if not root.is_dir:
        raise MemccpError(f"{what}: Not a directory")
    return scope.tree(root, settings.docroot)


def run(settings: Settings, stdin: io.TextIOBase | None, reporter: Reporter) -> int:
    """Copy what *settings* ask for, saying so through *reporter*; return the exit status
    (0 all stored, 1 not)."""
    scope = _scope(settings)  # the docroot, resolved once, before any server is reached
    servers = settings.servers
    if reporter.debugging:
        reporter.debug(f"servers {', '.join(map(str, servers))}; "
                       f"distribution {settings.distribution}, hash {settings.hash_name}")
    cluster = Cluster(servers, distribution=settings.distribution, hash_name=settings.hash_name,
                      timeout=settings.timeout, username=settings.username, password=settings.password,
                      retry_timeout=settings.retry_timeout, protocol=settings.protocol, note=reporter.note)
    if settings.wait is not None:
        from memccp_py.wait import wait_for_servers

        wait_for_servers(cluster.connections, settings.wait, settings.timeout)
    lists = _open_lists(settings.files_from, stdin, Scope(follow_any=settings.follow_any_link))
    selection = Selection(settings.include, settings.exclude) \
        if settings.include or settings.exclude else None
    files = [Stdin(getattr(stdin, "buffer", None)) if f == "-" else f for f in settings.files]
    jobs = make_jobs(all_paths(files, lists, settings.null, settings.recursive, selection, settings.docroot,
                               scope),
                     key=settings.key, mode=settings.key_mode, base=settings.docroot, prefix=settings.prefix,
                     escape=settings.escape, unique_keys=settings.unique_keys, suffix=settings.suffix,
                     index=settings.index)
    options = Options(op=settings.op, flags=settings.flags, exptime=settings.expire,
                      buffered=settings.buffered, gzip_flag=settings.gzip_flag,
                      warn_keys=settings.escape != "nginx", verify=settings.verify)
    try:
        summary = copy_files(jobs, cluster, options, reporter)
        evicted = report_evictions(cluster, reporter)
        unverified = verify(cluster, summary.written, reporter) if settings.verify else 0
    finally:
        cluster.close()
        for stream in lists:
            if stream is not getattr(stdin, "buffer", None):
                stream.close()
    reporter.summary(summary.files, summary.stored, summary.bytes, summary.failed)
    if settings.verify:
        reporter.note(f"verified {sum(map(len, summary.written.values()))} items, "
                      f"{unverified} missing or different")
    ok = summary.failed == 0 and summary.files == summary.stored and not evicted and not unverified
    return ExitStatus.SUCCESS if ok else ExitStatus.FAILURE
