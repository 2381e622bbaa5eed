"""libmemcached's key hash functions (libhashkit), as used for server placement."""

from typing import Callable, Dict

_MASK = 0xFFFFFFFF


def one_at_a_time(key: bytes) -> int:
    """libmemcached's default hash: Bob Jenkins' one-at-a-time."""
    h = 0
    for byte in key:
        h = (h + byte) & _MASK
        h = (h + (h << 10)) & _MASK
        h ^= h >> 6
    h = (h + (h << 3)) & _MASK
    h ^= h >> 11
    return (h + (h << 15)) & _MASK


HASHES: Dict[str, Callable[[bytes], int]] = {
    "default": one_at_a_time,
}


def hash_function(name: str) -> Callable[[bytes], int]:
    """The hash called *name* (as memccp --hash spells it, any case)."""
    try:
        return HASHES[name.lower()]
    except KeyError:
        raise ValueError(f"unknown hash {name!r}") from None
