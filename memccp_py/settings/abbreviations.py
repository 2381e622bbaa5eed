"""Long options abbreviated as C memccp's getopt_long abbreviates them.

C memccp accepts any unique prefix of its own long options (``--fla=5``, ``--e=60``,
``--pass=x``, ``--ba`` for --basename). memccp-py has more long options, so a prefix that
was unique in C could collide with one of them. :func:`expand` settles every prefix first
among C's options, then among memccp-py's own; the aliases of one option (--flag and
--flags) are one option, never ambiguous. It also writes every option that takes a value
as ``--name=value``, so that a value starting with "-" stays a value, as getopt reads it.
"""

from __future__ import annotations

import argparse
from collections import abc

#: The long options of C memccp: Debian's 1.1.4 and memcp 1.0.x (--flag).
C_LONG_OPTIONS = frozenset((
    "help", "version", "verbose", "debug", "quiet", "password", "username", "binary", "buffer",
    "non-blocking", "tcp-nodelay", "servers", "hash", "set", "add", "replace", "udp", "flag",
    "flags", "expire", "basename", "relative", "absolute"))


class AbbreviationError(Exception):
    """A long option that is no option's prefix, or the prefix of several."""


def _takes_value(action: argparse.Action) -> bool:
    return action.nargs != 0


def _resolve(prefix: str, names: abc.Iterable[str], actions: dict) -> argparse.Action | None:
    found = {id(actions["--" + n]): actions["--" + n] for n in names if n.startswith(prefix)}
    if len(found) > 1:
        choices = sorted(n for n in names if n.startswith(prefix))
        raise AbbreviationError(f"option '--{prefix}' is ambiguous; possibilities: "
                                + " ".join("--" + c for c in choices))
    return next(iter(found.values()), None)


def _long_name(action: argparse.Action) -> str:
    return next(o for o in action.option_strings if o.startswith("--"))


#: Stands in for an option value that is exactly "--", which argparse would drop; argv
#: cannot hold a NUL, so a value starting with one is never the user's. See :func:`restore`.
DASHES = "\0--"


def expand(argv: abc.Sequence[str], parser: argparse.ArgumentParser) -> tuple[list[str], list[str]]:
    """*argv* with every long option written out in full and every option value attached,
    and apart from it the FILEs after "--": those are files whatever they look like
    (argparse's intermixed parsing would take them for options)."""
    actions = parser._option_string_actions
    c_names = [o[2:] for o in actions if o[2:] in C_LONG_OPTIONS]
    own_names = [o[2:] for o in actions if o.startswith("--")]
    out: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg == "--":
            return out, list(args)
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            action = actions.get("--" + name) or _resolve(name, c_names, actions) \
                or _resolve(name, own_names, actions)
            if action is None:
                out.append(arg)  # argparse names it as unrecognized
                continue
            if not _takes_value(action):
                out.append(_long_name(action) + (eq + value))
                continue
            if not eq:
                value = next(args, None)
                if value is None:
                    out.append(_long_name(action))  # argparse says it needs a value
                    continue
            out.append(f"{_long_name(action)}={DASHES if value == '--' else value}")
        elif arg.startswith("-") and len(arg) > 1:
            out.extend(_short_cluster(arg, args, actions))
        else:
            out.append(arg)
    return out, []


def parse(parser: argparse.ArgumentParser, args: list[str]) -> argparse.Namespace:
    """``parser.parse_intermixed_args(args)`` for *args* from :func:`expand`: in one pass
    (half the time) when every option comes before every FILE, the usual command line;
    argparse's two passes otherwise."""
    actions = parser._option_string_actions
    files = len(args)
    while files and (args[files - 1] == "-" or not args[files - 1].startswith("-")):
        files -= 1
    if all(arg.partition("=")[0] in actions for arg in args[:files]):
        return parser.parse_args(args)
    return parser.parse_intermixed_args(args)


def restore(namespace: argparse.Namespace) -> argparse.Namespace:
    """The option values that were exactly "--" (see :data:`DASHES`), as they were."""
    for name, value in vars(namespace).items():
        if value == DASHES:
            setattr(namespace, name, "--")
        elif isinstance(value, list) and DASHES in value:
            setattr(namespace, name, ["--" if v == DASHES else v for v in value])
    return namespace


def _short_cluster(arg: str, args: abc.Iterator[str], actions: dict) -> list[str]:
    """``-vBs host`` as ``-v -B --servers=host``: each letter alone, a value attached."""
    out = []
    for i, letter in enumerate(arg[1:], start=1):
        action = actions.get("-" + letter)
        if action is None:
            return out + ["-" + arg[i:]] if out else [arg]  # argparse names it
        if not _takes_value(action):
            out.append("-" + letter)
            continue
        value = arg[i + 1:] or next(args, None)
        if value is None:
            out.append("-" + letter)
        else:
            out.append(f"{_long_name(action)}={DASHES if value == '--' else value}")
        break
    return out
