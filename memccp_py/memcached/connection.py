"""One memcached server, spoken to in the dialect it understands.

A :class:`Connection` dials the server, picks its dialect (``--protocol``: binary, text,
meta, or auto: binary first, then meta, then text for a server that rejects binary, kept
for the rest of the run), and turns every socket or protocol fault into a
:class:`~memccp_py.errors.ServerError` naming the server, closing the socket. Nothing
else is remembered: the next request reconnects.
"""

from __future__ import annotations

from collections import abc

from memccp_py.choices import PROTOCOLS
from memccp_py.errors import CopyError, InvalidKeyError, ServerError, StoreError
from memccp_py.memcached.binary import Binary
from memccp_py.memcached.meta import Meta
from memccp_py.memcached.text import NoStats, Text
from memccp_py.memcached.transport import (
    Rejected,
    Wire,
    WireFault,
    describe_socket_error,
    dial,
)
from memccp_py.placement.servers import Server
from memccp_py.records import Item

__all__ = ["PROTOCOLS", "Connection"]

_DIALECTS = {"binary": Binary, "text": Text, "meta": Meta}
_AUTO = (Binary, Meta, Text)


class Connection:
    """One server; every method raises ServerError (connection closed) on a server fault.

    *note*: called with one line about the server that is no fault (the dialect auto
    chose, statistics a proxy does not answer)."""

    def __init__(self, server: Server, timeout: float | None = None, username: str | None = None,
                 password: str | None = None, protocol: str = "auto",
                 note: abc.Callable[[str], None] | None = None) -> None:
        self.spec = server
        self.timeout = timeout
        self.username, self.password = username, password
        self.protocol = protocol
        self._note = note
        self._chosen = protocol != "auto"
        self._later: str | None = None  # a note said once the dialect is chosen
        #: the dialect in use (chosen on the first connection when auto), None until then
        self.speaker: Binary | Text | None = None
        if protocol != "auto":
            self.speaker = _DIALECTS[protocol](self)
        self.wire: Wire | None = None
        self._stats = True  # False once the server refused "stats" (a proxy)
        #: the server's eviction counter when this connection was made (None: unknown)
        self.evictions_at_connect: int | None = None
        self._item_size_max: int | None | bool = False  # False: not asked on this connection
        #: the eviction counter read right after the last request (False: none since)
        self._evictions_after: int | None | bool = False

    def __str__(self) -> str:
        return f"server {self.spec.name}"

    __repr__ = __str__

    # -- faults ------------------------------------------------------------------
    def fault(self, reason: str, kind: type = ServerError) -> ServerError:
        """The fault *reason* of this server (the connection is closed)."""
        self.disconnect()
        return kind(f"server {self.spec.name}: {reason}")

    def disconnect(self) -> None:
        """Close the socket; the next request connects again."""
        if self.wire is not None:
            self.wire.close()
        self.wire = None
        self._evictions_after = False
        self._item_size_max = False  # a restarted server may have another -I

    # -- connecting ----------------------------------------------------------------
    def open(self) -> None:
        """Connect (choosing the dialect on the first connection when auto), unless
        connected; the eviction counter is read on connecting where the server has one."""
        if self.wire is not None:
            return
        try:
            if not self._chosen:
                self._choose()
            else:
                self._attach(self.speaker)
        except Rejected as exc:
            raise self.fault(f"does not speak the {self.speaker.name} protocol ({exc})"
                             + ("" if self.protocol != "binary" else
                                "; --protocol=text or meta speaks to it")) from None
        except WireFault as exc:
            raise self.fault(str(exc)) from None
        except OSError as exc:
            raise self.fault(describe_socket_error(exc, self.timeout)) from None
        except ServerError:
            self.disconnect()
            raise
        if self._later:
            self._say(self._later)
            self._later = None

    def _attach(self, speaker) -> None:
        """Dial and start *speaker* on the new socket."""
        while True:
            self.wire = Wire(dial(self.spec, self.timeout), self.timeout)
            try:
                if isinstance(speaker, Binary):
                    self.evictions_at_connect = speaker.attach(self.wire)
                else:
                    self.evictions_at_connect = speaker.attach(self.wire, self._stats)
                return
            except NoStats:
                self._stats = False
                self._later = (f"server {self.spec.name} answers no statistics (a proxy?): "
                               "evictions and item sizes there are unknown")
                self.disconnect()  # it may have closed the connection: start again
            except BaseException:
                self.disconnect()
                raise

    def _choose(self) -> None:
        """auto: binary, else meta, else text; with SASL, binary only."""
        reasons = []
        for kind in (_AUTO[:1] if self.username else _AUTO):
            self.speaker = kind(self)
            try:
                self._attach(self.speaker)
            except Rejected as exc:
                reasons.append(f"{kind.name}: {exc}")
                if self.username:
                    raise self.fault(f"rejects the binary protocol ({exc}), the only one "
                                     "with SASL authentication (--username)") from None
                continue
            self._chosen = True
            if kind is not Binary:
                self._say(f"server {self.spec.name} rejects the binary protocol "
                          f"({reasons[0].split(': ', 1)[1]}): speaking {kind.name} to it")
            return
        raise self.fault("speaks no memcached protocol (" + "; ".join(reasons) + ")")

    def _say(self, line: str) -> None:
        if self._note is not None:
            self._note(line)

    # -- what memccp calls ------------------------------------------------------
    def _guarded(self, method: abc.Callable, *args):
        """*method*(*args*) on the open connection; faults become this server's ServerError."""
        self.open()
        try:
            return method(*args)
        except WireFault as exc:
            raise self.fault(str(exc)) from None
        except NoStats:
            self._stats = False
            self.disconnect()
            return None

    def item_size_max(self) -> int | None:
        """The largest item the server stores (memcached -I), asked once; None if unknown."""
        if self._item_size_max is False:
            self.open()
            self._item_size_max = self._guarded(self.speaker.stat, "item_size_max", b"settings") \
                if self._stats else None
        return self._item_size_max

    def evicted_since_connect(self) -> int | None:
        """How many items the server evicted since this connection was made (None if not
        connected or unknown)."""
        if self.wire is None:
            return None
        now = self._evictions_after
        if now is False:
            now = self._guarded(self.speaker.stat, "evictions") if self._stats else None
        if now is None or self.evictions_at_connect is None:
            return None
        return now - self.evictions_at_connect

    def store_many(self, op: str, items: abc.Sequence[Item], exptime: int,
                   count_evictions: bool = False) -> list[tuple[Item, CopyError]]:
        """Store *items* (distinct keys) with *op*: set, add or replace. Return the items the
        server refused or the dialect cannot carry, each with why; raise ServerError if the
        server itself failed. *count_evictions*: also read the eviction counter after them,
        in the same round trip, for :meth:`evicted_since_connect`."""
        self.open()
        speaker = self.speaker
        problem = speaker.expiry_problem(exptime)
        if problem is not None:
            return [(item, StoreError(problem)) for item in items]
        refused = []
        carried = []
        for item in items:
            problem = speaker.key_problem(item.key)
            if problem is None:
                carried.append(item)
            else:
                refused.append((item, InvalidKeyError(problem)))
        if not carried:
            return refused
        failures, after = self._guarded(speaker.store, op, carried, exptime,
                                        count_evictions and self._stats)
        if count_evictions:
            self._evictions_after = after
            if after is None:  # the counter is unknown: no eviction is reported
                self.disconnect()
        return refused + failures

    def read_back(self, expected: abc.Mapping[bytes, tuple[int, int, bytes]]) -> dict[bytes, str]:
        """key -> what is wrong, for each of *expected*'s items (key -> flags, length, digest)
        missing or not as stored."""
        self.open()
        carried = {k: v for k, v in expected.items() if self.speaker.key_problem(k) is None}
        return self._guarded(self.speaker.read_back, carried) if carried else {}
