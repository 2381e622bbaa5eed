"""Keys: how a file's key is chosen, and whether memcached can store it.

Everything here is pure: no I/O besides path arithmetic, no printing.
"""

import os

#: memcached refuses keys longer than this (in bytes).
MAX_KEY_LENGTH = 250

#: Bytes a text-protocol reader (nginx, ``get KEY``) cannot ask for.
_TEXT_UNSAFE = bytes(range(0x21))

#: Bytes nginx's memcached module sends %XX-escaped: space, %, controls.
_NGINX_ESCAPED = frozenset(range(0x20)) | {0x20, 0x25}


def key_problem(key: bytes) -> "str | None":
    """Why memcached cannot store *key*, or None when it can."""
    if not key:
        return "empty key"
    if len(key) > MAX_KEY_LENGTH:
        return f"key is {len(key)} bytes long, memcached allows at most {MAX_KEY_LENGTH}"
    return None


def key_warning(key: bytes) -> "str | None":
    """Why a text-protocol reader such as nginx can never fetch *key*, or None."""
    if len(key.translate(None, _TEXT_UNSAFE)) == len(key):
        return None  # the common case, at C speed
    bad = sorted({b for b in key if b in _TEXT_UNSAFE})
    names = ", ".join(f"0x{b:02X}" for b in bad)
    return (f"key contains space or control bytes ({names}): a text-protocol reader "
            "such as nginx cannot fetch it (see --escape=nginx)")


def nginx_escape(key: bytes) -> bytes:
    """Escape *key* the way nginx's memcached module escapes ``$memcached_key``."""
    if not any(b in _NGINX_ESCAPED for b in key):
        return key
    return b"".join(b"%%%02X" % b if b in _NGINX_ESCAPED else bytes((b,)) for b in key)


def key_for_path(path: str, mode: str = "basename") -> bytes:
    """The key memccp stores *path* under, by --basename/--relative/--absolute (or
    --slash-basename: the base name after a slash, as the patched memccp 1.0.8 kept it)."""
    if mode in ("basename", "slash-basename"):
        name = os.path.basename(path.rstrip("/")) or path
        if mode == "slash-basename" and not name.startswith("/"):
            name = "/" + name
    elif mode == "relative":
        name = path
    elif mode == "absolute":
        name = os.path.realpath(path)
    else:
        raise ValueError(f"unknown key mode {mode!r}")
    return os.fsencode(name)


def uri_key(path: str, base: str) -> bytes:
    """The URI under which a web server rooted at *base* serves *path* (``/dir/file``)."""
    rel = os.path.relpath(path, base) if path else os.curdir
    if rel == os.curdir or rel == os.pardir or rel.startswith(os.pardir + os.sep):
        raise ValueError(f"not below --docroot {base}")
    return b"/" + os.fsencode(rel)


def directory_uri(uri: bytes) -> bytes:
    """The URI of the directory holding *uri*: ``/docs/index.html`` -> ``/docs/``, ``/a`` -> ``/``."""
    return uri[:uri.rindex(b"/") + 1]
