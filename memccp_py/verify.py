"""After the run: are the items stored still there as stored?

Two checks: each server's eviction counter, compared with its value when
memccp connected (cheap, always done), and ``--verify``, which reads every
stored item back in pipelined batches and compares its flags, length and a
fingerprint of its bytes (values are never kept).
"""

from __future__ import annotations

from collections import abc

from memccp_py.errors import ServerError
from memccp_py.report import Reporter, show

#: --verify asks for at most this many keys, or this many value bytes, at once.
VERIFY_BATCH_ITEMS = 500
VERIFY_BATCH_BYTES = 4 << 20


def report_evictions(cluster, reporter: Reporter) -> int:
    """Name each server that evicted items while memccp ran; return how many did."""
    evicted = cluster.evicted()
    for server, count in evicted:
        reporter.error(f"server {server.name}: {count} item{'s' if count != 1 else ''} evicted while "
                       "memccp ran (memcached -m too small?): stored files may be missing")
    return len(evicted)


def _batches(held: dict) -> abc.Iterator[dict]:
    batch, size = {}, 0
    for key, (_path, flags, length, fingerprint) in held.items():
        batch[key] = (flags, length, fingerprint)
        size += length
        if len(batch) >= VERIFY_BATCH_ITEMS or size >= VERIFY_BATCH_BYTES:
            yield batch
            batch, size = {}, 0
    if batch:
        yield batch


def verify(cluster, written: dict, reporter: Reporter) -> int:
    """Read back every item in *written* (connection -> key -> (path, flags, length,
    digest)); name each one missing or different; return how many are."""
    bad = 0
    for conn, held in written.items():
        for batch in _batches(held):
            try:
                problems = cluster.read_back(conn, batch)
            except ServerError as exc:
                problems = {key: f"not verified: {exc}" for key in batch}
            for key, problem in problems.items():
                where = "" if problem.startswith("not verified") else f"server {conn.spec.name}: "
                reporter.error(f"{where}key '{show(key)}' {problem}", held[key][0])
            bad += len(problems)
    return bad
