"""libmemcached's key hash functions (libhashkit 1.1.4), as used to place keys.

All return an unsigned 32-bit number. libhashkit reads keys as C ``char``,
which is signed on the platforms Debian builds for: the one-at-a-time and FNV
hashes therefore see bytes >= 0x80 sign-extended; the others see them unsigned.
"""

import hashlib
import struct
import zlib
from typing import Callable, Dict

_M32 = 0xFFFFFFFF
_M64 = 0xFFFFFFFFFFFFFFFF
_LE32 = struct.Struct("<I")


def _signed(byte: int, mask: int = _M32) -> int:
    """A byte as C's signed char converted to an unsigned integer of *mask*'s width."""
    return byte | (mask ^ 0xFF) if byte >= 0x80 else byte


def _rotl(x: int, n: int) -> int:
    return ((x << n) | (x >> (32 - n))) & _M32


def one_at_a_time(key: bytes) -> int:
    """libmemcached's default hash: Bob Jenkins' one-at-a-time."""
    h = 0
    for byte in key:
        h = (h + _signed(byte)) & _M32
        h = (h + (h << 10)) & _M32
        h ^= h >> 6
    h = (h + (h << 3)) & _M32
    h ^= h >> 11
    return (h + (h << 15)) & _M32


def md5(key: bytes) -> int:
    """The first four bytes of the MD5 digest, little-endian."""
    return _LE32.unpack_from(hashlib.md5(key).digest())[0]


def crc(key: bytes) -> int:
    """Bits 16-30 of CRC-32 (0..32767), as libmemcached (and Cache::Memcached) use it."""
    return (zlib.crc32(key) >> 16) & 0x7FFF


def fnv1_64(key: bytes) -> int:
    """64-bit FNV-1, low 32 bits."""
    h = 0xCBF29CE484222325
    for byte in key:
        h = ((h * 0x100000001B3) & _M64) ^ _signed(byte, _M64)
    return h & _M32


def fnv1a_64(key: bytes) -> int:
    """libhashkit's "FNV1A_64": FNV-1a computed in 32 bits with the truncated 64-bit constants."""
    h = 0x84222325
    for byte in key:
        h = ((h ^ _signed(byte)) * 0x1B3) & _M32
    return h


def fnv1_32(key: bytes) -> int:
    """32-bit FNV-1."""
    h = 0x811C9DC5
    for byte in key:
        h = ((h * 0x01000193) & _M32) ^ _signed(byte)
    return h


def fnv1a_32(key: bytes) -> int:
    """32-bit FNV-1a."""
    h = 0x811C9DC5
    for byte in key:
        h = ((h ^ _signed(byte)) * 0x01000193) & _M32
    return h


def hsieh(key: bytes) -> int:
    """Paul Hsieh's SuperFastHash with a zero start (upstream libhashkit; not in Debian's build)."""
    n = len(key)
    if not n:
        return 0
    h = 0
    end = n & ~3
    for i in range(0, end, 4):
        lo, hi = struct.unpack_from("<HH", key, i)
        h = (h + lo) & _M32
        h = ((h << 16) & _M32) ^ ((hi << 11) & _M32) ^ h
        h = (h + (h >> 11)) & _M32
    rest = n - end
    if rest == 3:
        h = (h + key[end] + (key[end + 1] << 8)) & _M32
        h ^= (h << 16) & _M32
        h ^= (_signed(key[end + 2]) << 18) & _M32
        h = (h + (h >> 11)) & _M32
    elif rest == 2:
        h = (h + key[end] + (key[end + 1] << 8)) & _M32
        h ^= (h << 11) & _M32
        h = (h + (h >> 17)) & _M32
    elif rest == 1:
        h = (h + key[end]) & _M32
        h ^= (h << 10) & _M32
        h = (h + (h >> 1)) & _M32
    for shift_left, shift_right in ((3, 5), (4, 17), (25, 6)):
        h ^= (h << shift_left) & _M32
        h = (h + (h >> shift_right)) & _M32
    return h


def murmur(key: bytes) -> int:
    """MurmurHash2 (32-bit) seeded with 0xdeadbeef * length, as libhashkit does."""
    m, n = 0x5BD1E995, len(key)
    h = ((0xDEADBEEF * n) & _M32) ^ n
    end = n & ~3
    for (k,) in struct.iter_unpack("<I", key[:end]):
        k = (k * m) & _M32
        k = ((k ^ (k >> 24)) * m) & _M32
        h = ((h * m) & _M32) ^ k
    if n > end:
        h = ((h ^ int.from_bytes(key[end:], "little")) * m) & _M32
    h = ((h ^ (h >> 13)) * m) & _M32
    return h ^ (h >> 15)


def murmur3(key: bytes) -> int:
    """MurmurHash3 x86_32 seeded with 0xdeadbeef * length, as libhashkit does."""
    c1, c2, n = 0xCC9E2D51, 0x1B873593, len(key)
    h = (0xDEADBEEF * n) & _M32
    end = n & ~3
    for (k,) in struct.iter_unpack("<I", key[:end]):
        k = (_rotl((k * c1) & _M32, 15) * c2) & _M32
        h = (_rotl(h ^ k, 13) * 5 + 0xE6546B64) & _M32
    if n > end:
        k = int.from_bytes(key[end:], "little")
        h ^= (_rotl((k * c1) & _M32, 15) * c2) & _M32
    h ^= n
    h = ((h ^ (h >> 16)) * 0x85EBCA6B) & _M32
    h = ((h ^ (h >> 13)) * 0xC2B2AE35) & _M32
    return h ^ (h >> 16)


def _jenkins_mix(a: int, b: int, c: int):
    for x, y, z, r in ((0, 2, 1, 4), (1, 0, 2, 6), (2, 1, 0, 8), (0, 2, 1, 16), (1, 0, 2, 19), (2, 1, 0, 4)):
        v = [a, b, c]
        v[x] = ((v[x] - v[y]) & _M32) ^ _rotl(v[y], r)
        v[y] = (v[y] + v[z]) & _M32
        a, b, c = v
    return a, b, c


def _jenkins_final(a: int, b: int, c: int) -> int:
    for x, y, r in ((2, 1, 14), (0, 2, 11), (1, 0, 25), (2, 1, 16), (0, 2, 4), (1, 0, 14), (2, 1, 24)):
        v = [a, b, c]
        v[x] = ((v[x] ^ v[y]) - _rotl(v[y], r)) & _M32
        a, b, c = v
    return c


def jenkins(key: bytes) -> int:
    """Bob Jenkins' lookup3 hashlittle() with initval 13, as libhashkit does."""
    n = len(key)
    a = b = c = (0xDEADBEEF + n + 13) & _M32
    if not n:
        return c
    i = 0
    while n - i > 12:
        x, y, z = struct.unpack_from("<III", key, i)
        a, b, c = _jenkins_mix((a + x) & _M32, (b + y) & _M32, (c + z) & _M32)
        i += 12
    x, y, z = struct.unpack("<III", key[i:].ljust(12, b"\0"))
    return _jenkins_final((a + x) & _M32, (b + y) & _M32, (c + z) & _M32)


HASHES: Dict[str, Callable[[bytes], int]] = {
    "default": one_at_a_time, "md5": md5, "crc": crc, "fnv1_64": fnv1_64, "fnv1a_64": fnv1a_64,
    "fnv1_32": fnv1_32, "fnv1a_32": fnv1a_32, "hsieh": hsieh, "murmur": murmur,
    "jenkins": jenkins, "murmur3": murmur3,
}


def hash_function(name: str) -> Callable[[bytes], int]:
    """The hash called *name* (as memccp --hash spells it, any case)."""
    try:
        return HASHES[name.lower()]
    except KeyError:
        raise ValueError(f"unknown hash {name!r}") from None
