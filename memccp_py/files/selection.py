"""--include / --exclude: which files a run copies, by glob patterns matched as rsync and tar
match them.

* A pattern without ``/`` matches a name: the file's or a directory's own name, at any depth.
* A pattern with ``/`` matches the whole path below the tree (a leading ``/`` anchors it
  there, which is what it means anyway); ``*`` and ``?`` stop at ``/``, ``**`` does not.
* A pattern ending in ``/`` matches directories only.
* A file is copied when it matches some --include (or none is given) and no --exclude;
  --exclude wins. An excluded directory is not walked at all; --include never stops a walk.
"""

from __future__ import annotations

import re
from collections import abc

from memccp_py.errors import UsageError


def _translate(glob: str) -> str:
    """A regular expression for *glob* (``**``, ``*``, ``?``, ``[...]``)."""
    out, i, n = [], 0, len(glob)
    while i < n:
        c = glob[i]
        i += 1
        if c == "*":
            if glob.startswith("*", i):
                i += 1
                out.append(".*")
            else:
                out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = i + (glob[i:i + 1] in ("!", "^"))
            end = glob.find("]", end + (glob[end:end + 1] == "]"))  # a first "]" is literal
            if end < 0:
                out.append(re.escape(c))
                continue
            body, i = glob[i:end], end + 1
            negate = body[:1] in ("!", "^")
            body = (body[1:] if negate else body).replace("\\", "\\\\").replace("[", "\\[")
            out.append("[" + ("^/" if negate else "") + body + "]")
        else:
            out.append(re.escape(c))
    return "".join(out)


class _Pattern:
    __slots__ = ("regex", "whole_path", "dirs_only")

    def __init__(self, glob: str) -> None:
        self.dirs_only = glob.endswith("/") and glob.strip("/") != ""
        glob = glob.rstrip("/") if self.dirs_only else glob
        self.whole_path = "/" in glob
        self.regex = re.compile("(?s:" + _translate(glob.lstrip("/")) + r")\Z")

    def matches(self, rel: str, is_dir: bool) -> bool:
        if self.dirs_only and not is_dir:
            return False
        return self.regex.match(rel if self.whole_path else rel.rpartition("/")[2]) is not None


def _pattern(option: str, glob: str) -> _Pattern:
    try:
        return _Pattern(glob)
    except re.error as exc:
        raise UsageError(f"{option} {glob!r}: not a pattern ({exc})") from None


def _clean(rel: str) -> str:
    rel = rel.lstrip("/")
    while rel.startswith("./"):
        rel = rel[2:].lstrip("/")
    return rel


class Selection:
    """The --include and --exclude patterns of a run."""

    def __init__(self, include: abc.Sequence[str] = (), exclude: abc.Sequence[str] = ()) -> None:
        self.include = [_pattern("--include", g) for g in include]
        self.exclude = [_pattern("--exclude", g) for g in exclude]

    def wants_path(self, rel: str, is_dir: bool = False) -> bool:
        """:meth:`wants`, and no directory above *rel* excluded: for a path that does not come
        from a walk, which would not have entered an excluded directory."""
        rel = _clean(rel)
        parts = rel.split("/")
        for depth in range(1, len(parts)):
            above = "/".join(parts[:depth])
            if above not in ("", ".", "..") and any(p.matches(above, True) for p in self.exclude):
                return False
        return self.wants(rel, is_dir)

    def wants(self, rel: str, is_dir: bool = False) -> bool:
        """Whether the file (or directory) at *rel*, its path below the tree, is copied (walked)."""
        rel = _clean(rel)
        if any(p.matches(rel, is_dir) for p in self.exclude):
            return False
        if is_dir or not self.include:
            return True
        return any(p.matches(rel, False) for p in self.include)
