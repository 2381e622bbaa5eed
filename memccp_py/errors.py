"""Exceptions raised by memccp-py.

Everything the program reports to the user derives from :class:`MemccpError`;
``cli.main`` maps the classes to exit codes. Per-file problems are
:class:`CopyError` and do not stop the other files; :class:`UsageError` ends
the run before anything is sent.
"""


class MemccpError(Exception):
    """Base class of every error memccp-py reports."""


class UsageError(MemccpError):
    """The command line or environment is wrong: nothing was copied (exit 2)."""


class CopyError(MemccpError):
    """One file could not be stored; the other files go on."""


class FileReadError(CopyError):
    """The file could not be read (missing, unreadable, a directory, ...)."""


class InvalidKeyError(CopyError):
    """The key cannot be stored in memcached (empty, too long)."""


class StoreError(CopyError):
    """The server answered but refused to store the item."""


class KeyExistsError(StoreError):
    """--add: the key is already stored."""


class KeyNotFoundError(StoreError):
    """--replace: the key is not stored."""


class ItemTooLargeError(StoreError):
    """The value is larger than the server's item size limit."""


class ServerError(CopyError):
    """A server could not be reached, stopped answering or broke the connection."""


class AuthenticationError(ServerError):
    """SASL authentication failed or is required."""
