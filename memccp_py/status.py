"""memccp's exit statuses, as the manual's EXIT STATUS section lists them.

Plain integers in a namespace rather than an IntEnum. The thin client behind bin/memccp
(memccp_py/warm/client.py) does not import this module, which would cost every call time;
it keeps a copy of the two statuses it needs, checked by a test.
"""


class ExitStatus:
    """Every status memccp exits with."""

    #: every file stored (and, with --verify, read back as stored)
    SUCCESS = 0
    #: some file or server failed, or the eviction counter grew
    FAILURE = 1
    #: a usage error: nothing was stored
    USAGE = 2
    #: an internal error, a bug (EX_SOFTWARE); --debug shows where
    INTERNAL = 70
    #: standard output could not be flushed at exit, as the interpreter exits then
    FLUSH_FAILED = 120
    #: interrupted (128 + SIGINT)
    INTERRUPTED = 130

    @staticmethod
    def signalled(signum: int) -> int:
        """The status of a run ended by signal *signum*, as a shell reports it."""
        return 128 + signum
