"""Items: what is stored (key, bytes, flags), what memcached says about one item it did
not store, and how an item read back is compared with what was stored."""

from __future__ import annotations

import hashlib
import struct

from memccp_py.errors import CopyError, ItemTooLargeError, KeyExistsError, KeyNotFoundError, StoreError
from memccp_py.keys import show

__all__ = ["Item", "TOO_LARGE", "compare", "digest", "item_error"]

#: Why an item is not stored when it is larger than the server's item size.
TOO_LARGE = "value is larger than the server's item size limit (memcached -I)"

#: Status codes that concern one item only, with what they mean here.
ITEM_STATUS = {
    0x04: "the server rejected the request as invalid",
    0x82: "the server is out of memory",
}


class Item:
    """One item to store: ``key``, ``data`` (bytes) and ``flags``."""

    __slots__ = ("key", "data", "flags")

    def __init__(self, key: bytes, data: bytes, flags: int) -> None:
        self.key = key
        self.data = data
        self.flags = flags


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


def compare(expected: tuple[int, int, bytes], reply) -> str | None:
    """What differs between *expected* (flags, length, digest) and a get's *reply*, or None."""
    flags, length, fingerprint = expected
    got = struct.unpack("!L", reply.extras)[0] if len(reply.extras) == 4 else None
    if got != flags or reply.length != length:
        return (f"differs after the run (read back flags {got}, {reply.length} bytes; "
                f"stored flags {flags}, {length} bytes)")
    if reply.value is None or digest(reply.value) != fingerprint:
        return "differs after the run (other bytes than stored)"
    return None
