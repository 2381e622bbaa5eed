"""What a run passes along, in the order it is made: a :class:`Found` file (or a
:class:`Skipped` one) from the walk and the lists, a :class:`Job` (or a :class:`Notice`)
once its key is known, an :class:`Item` once its file is read, and the run's
:class:`Summary`. Plain records: the modules that make and use them hold the logic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from memccp_py.files.nodes import Node
    from memccp_py.files.resolve import Scope


class Found:
    """A file to copy: ``path`` as shown and keyed; ``scope``: the link rule (and tree) it
    is opened under; ``base``: the directory node ``name`` is resolved from (None: / or the
    working directory); ``rel``: its path below --docroot when the walk knows it, else
    None; ``node``: the file already opened (a link the walk followed), else None;
    ``link``: whether its last component may be a link (False where the walk saw a file)."""

    __slots__ = ("path", "scope", "base", "name", "rel", "node", "link")

    def __init__(self, path: str, scope: Scope | None = None, base: Node | None = None,
                 name: str | None = None, rel: str | None = None, node: Node | None = None,
                 link: bool = True) -> None:
        self.path = path
        self.scope = scope
        self.base = base
        self.name = path if name is None else name
        self.rel = rel
        self.node = node
        self.link = link


class Skipped:
    """Something not copied: ``path``, ``reason``; ``error`` True makes the run fail."""

    __slots__ = ("path", "reason", "error")

    def __init__(self, path: str, reason: str, error: bool = False) -> None:
        self.path = path
        self.reason = reason
        self.error = error


class Job:
    """One file and the key it is stored under.

    ``path``: str, as shown; ``key``: bytes; ``problem``: why the file cannot be stored
    (no key, unreadable directory, ...), else None; ``name``: the key before
    --escape=nginx (nginx hashes that one), else None; ``source``: what to open and the
    tree it must stay in (a :class:`Found`), else just ``path``.
    """

    __slots__ = ("path", "key", "problem", "name", "source")

    def __init__(self, path: str, key: bytes, problem: str | None = None,
                 name: bytes | None = None, source=None) -> None:
        self.path = path
        self.key = key
        self.problem = problem
        self.name = name
        self.source = source


class Notice:
    """Something said about ``path`` that is no failure (a skipped link, a key used twice)."""

    __slots__ = ("path", "message")

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message


class Item:
    """One item to store: ``key``, ``data`` (bytes) and ``flags``."""

    __slots__ = ("key", "data", "flags")

    def __init__(self, key: bytes, data: bytes, flags: int) -> None:
        self.key = key
        self.data = data
        self.flags = flags


class Summary:
    """What a run did: files seen, stored, bytes stored, files failed; with --verify,
    ``written``: per connection, key -> (path, flags, length, digest) of each item stored."""

    def __init__(self, files: int, stored: int, bytes: int, failed: int,
                 written: dict | None = None) -> None:
        self.files, self.stored, self.bytes, self.failed = files, stored, bytes, failed
        self.written = written or {}
