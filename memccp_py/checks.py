"""After the run: are the items stored still there as stored?

Two checks: each server's eviction counter, compared with its value when
memccp connected (cheap, always done), and ``--verify``, which reads every
stored item back in pipelined batches and compares its flags, length and a
fingerprint of its bytes (values are never kept).
"""

from __future__ import annotations

import io
import os
from collections import abc

from memccp_py.errors import ServerError
from memccp_py.keys import show

#: --verify asks for at most this many keys, or this many value bytes, at once.
VERIFY_BATCH_ITEMS = 500
VERIFY_BATCH_BYTES = 4 << 20


def _say(err: io.TextIOBase | None, line: str) -> None:
    if err is not None:
        err.write(f"memccp: {line}\n")


def report_evictions(cluster, err: io.TextIOBase | None) -> int:
    """Name each server that evicted items while memccp ran; return how many did."""
    evicted = cluster.evicted()
    for server, count in evicted:
        _say(err, f"server {server.name}: {count} item{'s' if count != 1 else ''} evicted while "
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


def verify(cluster, written: dict, err: io.TextIOBase | None) -> int:
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
                path = show(os.fsencode(held[key][0]))
                where = "" if problem.startswith("not verified") else f"server {conn.spec.name}: "
                _say(err, f"{path}: {where}key '{show(key)}' {problem}")
            bad += len(problems)
    return bad
