"""Copy files into memcached: read each file, store it under its key, report.

Nothing here parses options, writes or exits: it takes the jobs, a cluster (the
client) and a :class:`~memccp_py.report.Reporter`, and returns a :class:`Summary`.
"""

from __future__ import annotations

from collections import abc

from memccp_py.errors import CopyError, InvalidKeyError, ItemTooLargeError
from memccp_py.files.keys import MAX_KEY_LENGTH, key_problem, key_warning
from memccp_py.files.reading import read_file
from memccp_py.memcached import Connection
from memccp_py.memcached.items import TOO_LARGE, digest
from memccp_py.records import Item, Job, Notice, Summary
from memccp_py.report import Reporter, show

#: Files larger than this are checked against the servers' item size (memcached -I) before
#: they are read: a sparse 1 GiB file meant for a 1 MiB server is never read.
ASK_ITEM_LIMIT_FROM = 64 << 10

#: Pipelined stores are sent in batches of at most this many bytes or items.
BATCH_BYTES = 4 << 20
BATCH_ITEMS = 1000


class Options:
    """How files are stored.

    ``op``: set, add or replace; ``flags``, ``exptime``: stored with every item;
    ``buffered``: pipeline the stores; ``gzip_flag``: store gzip'd bytes and OR this into
    the flags (None: off); ``warn_keys``: warn about keys a text-protocol reader cannot
    fetch; ``verify``: remember a fingerprint of each item stored, to read it back after
    the run.
    """

    def __init__(self, op: str = "set", flags: int = 0, exptime: int = 0, buffered: bool = False,
                 gzip_flag: int | None = None, warn_keys: bool = True, verify: bool = False) -> None:
        self.op, self.flags, self.exptime, self.buffered = op, flags, exptime, buffered
        self.gzip_flag, self.warn_keys, self.verify = gzip_flag, warn_keys, verify


def gzip_bytes(data: bytes) -> bytes | None:
    """gzip-compressed *data* (reproducible: no name, no time), or None if not smaller."""
    import gzip

    packed = gzip.compress(data, compresslevel=9, mtime=0)
    return packed if len(packed) < len(data) else None


class _Run:
    """State of one copy run: counts, pending pipelined items."""

    def __init__(self, cluster, options: Options, reporter: Reporter):
        self.cluster = cluster
        self.opt = options
        self.reporter = reporter
        self.files = self.stored = self.bytes = 0
        self.failed: set = set()
        # per connection: key -> (item, job number); flushed in batches
        self.pending: dict[Connection, dict[bytes, tuple[Item, int]]] = {}
        self.pending_bytes = 0
        self.pending_jobs: dict[int, tuple[Job, int]] = {}  # job number -> (job, size)
        self.routed: list[Connection] = []  # the servers of the file being prepared
        #: per connection: key -> (path, flags, length, digest) stored, for --verify
        self.written: dict[Connection, dict[bytes, tuple]] | None = {} if options.verify else None

    def fail(self, job: Job, reason: object, number: int) -> None:
        self.failed.add(number)
        self.reporter.error(reason, job.path)

    def done(self, job: Job, size: int) -> None:
        self.stored += 1
        self.bytes += size
        self.reporter.stored(job.key)

    def prepare(self, job: Job) -> tuple[Item, list[Connection]]:
        """Check the key, find its servers, read the file (gzip it if asked): the item to
        store and where. A file larger than its servers store is not read at all."""
        if job.problem:
            raise CopyError(job.problem)
        if not 0 < len(job.key) <= MAX_KEY_LENGTH:
            raise InvalidKeyError(f"{key_problem(job.key)}: '{show(job.key)}'")
        connections = self.routed = self.cluster.route(job.key, job.name)
        source, job.source = job.source, None  # a pending job holds no open directory
        data = read_file(source or job.path,
                         check_size=self._check_size if self.opt.gzip_flag is None else None)
        flags = self.opt.flags
        if self.opt.gzip_flag is not None:
            packed = gzip_bytes(data)
            if packed is not None:
                data, flags = packed, flags | self.opt.gzip_flag
        if self.opt.warn_keys:
            warning = key_warning(job.key)
            if warning:
                self.reporter.warning(warning, job.path)
        return Item(job.key, data, flags), connections

    def _check_size(self, size: int) -> None:
        """Refuse, before it is read, a file larger than the servers it goes to store."""
        if size > ASK_ITEM_LIMIT_FROM:
            limit = self.cluster.item_limit(self.routed)
            if limit is not None and size > limit:
                raise ItemTooLargeError(TOO_LARGE)

    def copy(self, number: int, job: Job, last: bool = False) -> None:
        self.files += 1
        if self.reporter.shows_progress:
            self.reporter.progress(self.files, self.stored, self.bytes, len(self.failed))
        try:
            item, connections = self.prepare(job)
        except CopyError as exc:
            self.fail(job, exc, number)
            return
        self.queue(number, job, item, connections)
        if not self.opt.buffered:
            self.flush(last)  # unbuffered: a batch of one, through the same path

    def queue(self, number: int, job: Job, item: Item, connections: list[Connection]) -> None:
        key, pending = item.key, self.pending
        for conn in connections:
            if key in pending.get(conn, ()):
                self.flush()  # the same key twice: keep the order of the stores
                pending = self.pending
                break
        for conn in connections:
            batch = pending.get(conn)
            if batch is None:
                batch = pending[conn] = {}
            batch[key] = (item, number)
        size = len(item.data)
        self.pending_jobs[number] = (job, size)
        self.pending_bytes += size * len(connections)
        if self.pending_bytes >= BATCH_BYTES or len(self.pending_jobs) >= BATCH_ITEMS:
            self.flush()

    def flush(self, last: bool = False) -> None:
        """Store what is pending, server by server; a fault of one server fails only its
        items. *last*: nothing is stored after this."""
        pending, self.pending, self.pending_bytes = self.pending, {}, 0
        for conn, batch in pending.items():
            items = [item for item, _ in batch.values()]
            refused = {}
            for item, exc in self.cluster.store(conn, self.opt.op, items, self.opt.exptime, last):
                number = batch[item.key][1]
                refused[item.key] = number
                self.fail(self.pending_jobs[number][0], exc, number)
            if self.written is not None:
                self._remember(conn, batch, refused)
        for number, (job, size) in sorted(self.pending_jobs.items()):
            if number not in self.failed:
                self.done(job, size)
        self.pending_jobs = {}
        self.reporter.confirmed()  # what -v listed of this batch goes out now

    def _remember(self, conn: Connection, batch: dict, refused: dict) -> None:
        """Note what *conn* now holds, to read it back after the run (--verify)."""
        held = self.written.setdefault(conn, {})
        for key, (item, number) in batch.items():
            if key in refused:
                continue
            held[key] = (self.pending_jobs[number][0].path, item.flags, len(item.data),
                         digest(item.data))


class _OneAhead:
    """Iterate over *items* one ahead: ``last`` says whether the item just given is the last.
    An error getting an item is raised in its turn, after the items before it are used."""

    def __init__(self, items: abc.Iterator) -> None:
        self._items = items
        self._advance()

    def _advance(self) -> None:
        try:
            self._next = next(self._items, _END)
        except Exception as exc:  # noqa: BLE001  (raised again in its turn; no job is one)
            self._next = exc
        self.last = self._next is _END

    def __iter__(self) -> _OneAhead:
        return self

    def __next__(self):
        item = self._next
        if item is _END:
            raise StopIteration
        if isinstance(item, Exception):
            raise item
        self._advance()
        return item


_END = object()


def copy_files(jobs: abc.Iterable[Job | Notice], cluster, options: Options, reporter: Reporter) -> Summary:
    """Store every job's file in *cluster*; say what happens through *reporter*."""
    run = _Run(cluster, options, reporter)
    reporter.begin()
    # Unbuffered, the files are named on the command line: looking one ahead never waits,
    # and the last file's store also asks for the eviction counter. Buffered, the names
    # may come from a pipe: each is taken as it comes, and the last flush asks.
    numbered = enumerate(jobs) if options.buffered else _OneAhead(enumerate(jobs))
    for number, job in numbered:
        if isinstance(job, Notice):
            reporter.warning(job.message, job.path)
        else:
            run.copy(number, job, last=not options.buffered and numbered.last)
    run.flush(last=True)
    reporter.end()
    return Summary(run.files, run.stored, run.bytes, len(run.failed), run.written)
