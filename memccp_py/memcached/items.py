"""Items: what is stored (key, bytes, flags), what memcached says about one item it did
not store, and how an item read back is compared with what was stored."""

from __future__ import annotations

import hashlib

from memccp_py.errors import (
    CopyError,
    ItemTooLargeError,
    KeyExistsError,
    KeyNotFoundError,
    StoreError,
)
from memccp_py.records import Item
from memccp_py.report import show

__all__ = ["TOO_LARGE", "compare", "digest", "item_error"]

#: Why an item is not stored when it is larger than the server's item size.
TOO_LARGE = "value is larger than the server's item size limit (memcached -I)"

#: Status codes that concern one item only, with what they mean here.
ITEM_STATUS = {
    0x04: "the server rejected the request as invalid",
    0x82: "the server is out of memory",
}


def digest(data: bytes) -> bytes:
    """A short fingerprint of a value, to compare what is read back with what was stored."""
    return hashlib.blake2b(data, digest_size=16).digest()


def item_error(op: str, item: Item, status: int) -> CopyError:
    """Why *item* was not stored by *op* (set, add, replace), from the reply's *status*."""
    key = show(item.key)
    if status == 0x02 and op == "add":
        return KeyExistsError(f"key '{key}' already exists (--add stores only new keys)")
    if status == 0x01 and op == "replace":
        return KeyNotFoundError(f"key '{key}' does not exist (--replace changes only existing keys)")
    if status == 0x03:
        return ItemTooLargeError(TOO_LARGE)
    if status in ITEM_STATUS:
        return StoreError(ITEM_STATUS[status])
    return StoreError(f"key '{key}': item not stored")


def compare(expected: tuple[int, int, bytes], got: int | None, got_length: int,
            value: bytes | None) -> str | None:
    """What differs between *expected* (flags, length, digest) and what a get read back
    (flags *got*, *got_length* bytes, *value*: None if too long to keep), or None."""
    flags, length, fingerprint = expected
    if got != flags or got_length != length:
        return (f"differs after the run (read back flags {got}, {got_length} bytes; "
                f"stored flags {flags}, {length} bytes)")
    if value is None or digest(value) != fingerprint:
        return "differs after the run (other bytes than stored)"
    return None
