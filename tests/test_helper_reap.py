"""The helper's bookkeeping when a worker ends: a worker whose "took a call" message comes
in just as it is reaped is a finished call, not a spare that died."""

import socket
import struct

from memccp_py.warm import helper as helper_module
from memccp_py.warm.helper import Helper

WORKER = 4242  # a pid that is never signalled here: the helper only closes its connection


def bare_helper() -> tuple:
    """A Helper with just the state _reap reads, and the worker's end of its channel."""
    helper = Helper.__new__(Helper)
    helper.channel, worker_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    helper.workers, helper.spares, helper.hung_up, helper.served = {}, {WORKER}, set(), set()
    helper.finishing = {}
    helper.failures, helper.accepting = 0, True
    return helper, worker_end


def test_call_taken_while_reaped_is_not_a_dead_spare(monkeypatch):
    helper, worker_end = bare_helper()
    client_end, kept = socket.socketpair()
    reaped = []

    def waitpid(pid, options):
        if reaped:
            return 0, 0
        # the worker takes a call, serves it and ends between the helper's looks
        worker_end.sendmsg([b"T%d" % WORKER],
                           [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", kept.fileno()))])
        reaped.append(pid)
        return WORKER, 0

    monkeypatch.setattr(helper_module.os, "waitpid", waitpid)
    try:
        helper._reap()
        assert helper.workers == {}  # its connection is closed, not held for good
        assert helper.spares == set() and helper.failures == 0
        helper._messages()
        assert helper.workers == {}
        client_end.settimeout(5)
        kept.close()
        assert client_end.recv(1) == b""  # every copy of the worker's connection is closed
    finally:
        for sock in (helper.channel, worker_end, client_end, kept):
            sock.close()


def test_spare_that_died_counts_as_a_failure(monkeypatch):
    helper, worker_end = bare_helper()
    answers = iter([(WORKER, 1 << 8), (0, 0)])
    monkeypatch.setattr(helper_module.os, "waitpid", lambda pid, options: next(answers))
    try:
        helper._reap()
        assert helper.spares == set() and helper.failures == 1 and helper.workers == {}
    finally:
        helper.channel.close()
        worker_end.close()
