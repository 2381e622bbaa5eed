"""The Reporter: what each of -q, -v and --debug lets through, and how it is written."""

import io

import pytest

from memccp_py.report import Reporter


def said(**levels):
    out, err = io.StringIO(), io.StringIO()
    reporter = Reporter(out, err, **levels)
    reporter.error("lost", "/srv/a")
    reporter.warning("odd", "/srv/b")
    reporter.warning("odd option")
    reporter.note("chose text")
    reporter.debug("servers x")
    reporter.stored(b"/a")
    reporter.summary(1, 1, 3, 0)
    reporter.finish()
    return out.getvalue(), err.getvalue()


ERROR = "memccp: /srv/a: lost\n"
WARNINGS = "memccp: /srv/b: warning: odd\nmemccp: warning: odd option\n"
NOTE = "memccp: chose text\n"
DEBUG = "memccp: debug: servers x\n"
SUMMARY = "memccp: 1 file, 1 stored (3 bytes), 0 failed\n"


@pytest.mark.parametrize("levels, out, err", [
    ({}, "", ERROR + WARNINGS),
    ({"quiet": True}, "", ERROR),
    ({"verbose": True}, "/a\n", ERROR + WARNINGS + NOTE + SUMMARY),
    ({"verbose": True, "quiet": True}, "", ERROR),
    ({"debug": True}, "", ERROR + WARNINGS + DEBUG),
    ({"debug": True, "quiet": True}, "", ERROR + DEBUG),
])
def test_levels(levels, out, err):
    """Errors always; warnings unless -q; keys, notes and the summary under -v without -q;
    debugging lines under --debug, -q or not."""
    assert said(**levels) == (out, err)


def test_escaped():
    """Control bytes and undecodable bytes in a path, a message or a key come out as \\xNN."""
    out, err = io.StringIO(), io.StringIO()
    reporter = Reporter(out, err, verbose=True)
    reporter.error("server said \x1b[2J", "/srv/\x1b]0;x\x07" + b"\xff".decode("utf-8", "surrogateescape"))
    reporter.stored(b"/k\n\xff")
    assert err.getvalue() == "memccp: /srv/\\x1b]0;x\\x07\\xff: server said \\x1b[2J\n"
    assert out.getvalue() == "/k\\x0a\\xff\n"


def test_progress_line_erased_before_a_line(monkeypatch):
    """A line said while the progress line shows starts on a blank line, and the end of the
    copy erases the progress line."""
    import itertools

    from memccp_py import report

    clock = itertools.count(0, 1.0)  # every look at the clock: a second later
    monkeypatch.setattr(report.time, "monotonic", lambda: next(clock))
    err = io.StringIO()
    reporter = Reporter(None, err, progress=True)
    reporter.begin()
    reporter.progress(2, 1, 4096, 0)
    reporter.error("gone", "/x")
    reporter.progress(3, 2, 8192, 1)
    reporter.end()
    line1 = "memccp: 2 files, 1 stored (4 KiB), 0 failed"
    line2 = "memccp: 3 files, 2 stored (8 KiB), 1 failed"
    assert err.getvalue() == ("\r" + line1 + "\r" + " " * len(line1) + "\r" + "memccp: /x: gone\n"
                              + "\r" + line2 + "\r" + " " * len(line2) + "\r")


def test_a_failing_stream_never_stops_the_rest():
    """Standard output that fails during the copy is said once on standard error, and the
    copy goes on; later writes go nowhere."""
    class Full(io.StringIO):
        def write(self, text):
            raise OSError(28, "No space left on device")

    err = io.StringIO()
    reporter = Reporter(Full(), err, verbose=True)
    reporter.begin()
    reporter.stored(b"/a")
    reporter.stored(b"/b")
    reporter.error("later")
    assert err.getvalue() == ("memccp: standard output: No space left on device (the copy goes on)\n"
                              "memccp: later\n")


@pytest.mark.parametrize("debug", [True, False])
def test_libraries_are_logged_for_the_block_only(debug):
    """--debug: a library's log line inside the block is said, escaped; after it, the root
    logger is as it was (no handler left on this run's standard error, its level back)."""
    import logging

    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    err = io.StringIO()
    reporter = Reporter(io.StringIO(), err, debug=debug)
    with reporter.libraries_logged():
        logging.getLogger("bmemcached.protocol").debug("Authenticating as \x1b[2Jalice")
    logging.getLogger("bmemcached.protocol").debug("after the block")
    assert err.getvalue() == ("memccp: debug: bmemcached.protocol: Authenticating as \\x1b[2Jalice\n"
                              if debug else "")
    assert (list(root.handlers), root.level) == before
