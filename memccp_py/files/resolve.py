"""Opening a name beneath a directory already held, with the link rule.

No path is looked up twice. A name is resolved one component at a time, each opened
(``O_PATH | O_NOFOLLOW``) relative to the descriptor of the directory before it, or, for a
name with no link in it, in one ``openat2()`` call that the kernel keeps beneath its start.
What is checked (type, owner, place) is what was opened, by its descriptor, and what is
read is that very descriptor, opened again for reading.

A symbolic link met anywhere in a name is followed only:

* when it is owned by root, by the caller (the effective uid), or by the owner of what it
  leads to (Apache's SymLinksIfOwnerMatch), unless the caller said ``--follow-any-link``;
* in a scope with a tree (-r DIR, --docroot DIR), when what it leads to lies inside it;
* never into /proc, /sys or /dev.
"""

from __future__ import annotations

import errno
import os
import stat

from memccp_py.files.nodes import LinkError, Node, open_beneath, open_step

#: Pseudo file systems whose files are never reached through a link.
PSEUDO_ROOTS = ("/proc", "/sys", "/dev")
#: Links followed in one name at most, as the kernel's limit (ELOOP after it).
MAX_LINKS = 40



def pseudo(real: str) -> str | None:
    """The pseudo file system (/proc, /sys, /dev) the resolved path *real* lies in, or None."""
    for root in PSEUDO_ROOTS:
        if real == root or real.startswith(root + "/"):
            return root
    return None


def owner(uid: int) -> str:
    """A user as a message names it: ``alice (1000)``."""
    import pwd

    try:
        return f"{pwd.getpwuid(uid).pw_name} ({uid})"
    except (KeyError, OverflowError):
        return f"uid {uid}"


class Refused(Exception):
    """A link not followed: ``link`` and ``target`` as the kernel names them, ``reason``."""

    def __init__(self, link: str, target: str, reason: str) -> None:
        super().__init__(f"link {link} leads to {target}: {reason}")
        self.link, self.target, self.reason = link, target, reason


class _Barred(Exception):
    """A directory on the way the owner of a link being followed may not search."""

    def __init__(self, uid: int, node: Node) -> None:
        super().__init__(uid)
        self.uid, self.node = uid, node


def may_search(st: os.stat_result, uid: int, known: dict[int, frozenset[int]]) -> bool:
    """Whether the user *uid* may search the directory of status *st*, by its mode bits
    (an access control list granting more is not read: such a directory is refused).
    *known*: the groups of the users looked up so far in this run (uid -> gids)."""
    if uid == 0:
        return True
    if st.st_uid == uid:
        return bool(st.st_mode & stat.S_IXUSR)
    groups = known.get(uid)
    if groups is None:
        import pwd

        try:
            user = pwd.getpwuid(uid)
            groups = frozenset(os.getgrouplist(user.pw_name, user.pw_gid))
        except (KeyError, OSError):
            groups = frozenset()  # no such user: no group of theirs
        known[uid] = groups
    if st.st_gid in groups:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


class Scope:
    """Where names are resolved and which links are followed: ``root`` (a directory Node)
    bounds a tree, None resolves anywhere; ``top``: the tree as the user wrote it;
    ``follow_any``: --follow-any-link; ``caller``: whose links are trusted."""

    def __init__(self, root: Node | None = None, top: str | None = None,
                 follow_any: bool = False, caller: int | None = None,
                 allowed: tuple[Node, ...] = (), groups: dict[int, frozenset[int]] | None = None) -> None:
        self.root, self.top, self.follow_any = root, top, follow_any
        self.groups = {} if groups is None else groups  # the users' groups, read once a run
        self.caller = os.geteuid() if caller is None else caller
        self.root_name = root.kernel_name() if root is not None else None
        self.allowed = allowed  # --allow-links-into: directories links may lead into
        self._allowed_ids = {node.identity for node in allowed}

    def tree(self, root: Node, top: str) -> Scope:
        """The same rule, bounded by the directory *root* (written *top*)."""
        root.inside = True
        return Scope(root, top, self.follow_any, self.caller, self.allowed, self.groups)

    def _in_allowed(self, node: Node) -> bool:
        """Whether *node* is, or lies below, a directory of --allow-links-into, by the
        directories it was reached through (held, or remembered by identity)."""
        here: Node | None = node
        while here is not None:
            if here.identity in self._allowed_ids:
                return True
            if here.parent is None:
                above = here.ancestry
                while above is not None:
                    if above[0] in self._allowed_ids:
                        return True
                    above = above[2]
                return False
            here = here.parent
        return False

    def start(self, path: str) -> Node:
        """The node a *path* outside any tree starts from: / or the working directory."""
        fd, st = open_step(None, "/" if path.startswith("/") else ".")
        return Node(fd, st, None, None, self._is_root(st))

    def _is_root(self, st: os.stat_result) -> bool:
        return self.root is not None and (st.st_dev, st.st_ino) == self.root.identity

    def below(self, node: Node) -> str | None:
        """*node*'s path below the tree's root (for --include/--exclude), None if unknown."""
        name = node.kernel_name()
        if name is None or self.root_name is None:
            return None
        if name == self.root_name:
            return os.curdir
        return os.path.relpath(name, self.root_name)

    def resolve(self, base: Node | None, path: str, follow: bool = True) -> Node:
        """What *path* names from *base* (None: from / or the working directory). Links
        on the way are followed by the rule; the last one only with *follow*. Raises
        OSError (FileNotFoundError, ...), LinkError or Refused."""
        if not path:  # not "here": an empty name (an unset variable) names nothing
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT))
        if base is None or path.startswith("/"):
            base = self.start(path)
        if follow and "/" in path.strip("/") and (self.root is None or base.inside):
            node = open_beneath(base, path)
            if node is not None:
                return node
        return self._walk(base, path, [MAX_LINKS], follow, 0, ())

    def _walk(self, node: Node, path: str, budget: list[int], follow: bool, depth: int,
              searchers: tuple[int, ...]) -> Node:
        """*path* from *node*; each directory searched must be one every user of
        *searchers* may search (the owners of the links being followed by owner match)."""
        if path.startswith("/"):
            node = self.start(path)
        names = [name for name in path.split("/") if name and name != "."]
        for number, name in enumerate(names, 1):
            for uid in searchers:
                if not may_search(node.st, uid, self.groups):
                    raise _Barred(uid, node)
            if name == "..":
                node = self._up(node)
                continue
            fd, st = open_step(node.fd, name)
            child = Node(fd, st, node, name, node.inside or self._is_root(st))
            if stat.S_ISLNK(st.st_mode) and (follow or number < len(names)):
                child = self._follow(node, child, budget, depth, searchers)
            node = child
        return node

    def _up(self, node: Node) -> Node:
        if node.parent is not None:
            return node.parent
        fd, st = open_step(node.fd, "..")
        if node.ancestry is None:
            return Node(fd, st, None, None, self._is_root(st))
        identity, inside, above = node.ancestry
        if (st.st_dev, st.st_ino) != identity:
            os.close(fd)
            raise OSError(errno.ESTALE, "a directory moved while the tree was read")
        up = Node(fd, st, None, None, inside)
        up.ancestry = above
        return up

    def _follow(self, where: Node, link: Node, budget: list[int], depth: int,
                searchers: tuple[int, ...]) -> Node:
        """What *link* (opened in *where*) leads to, if the rule lets it be followed. Where
        it leads is checked for the links of the name itself (*depth* 0): what a link met
        on the way to it leads to counts only as a step (/proc/self on the way to
        /proc/self/environ is not what is refused: /proc/PID/environ is). A link trusted
        only because its owner owns its target must lead where its owner may go: every
        directory on the way must be one its owner may search (root may enter a 0700
        directory of root's and find a file of the link's owner there; the owner may not)."""
        budget[0] -= 1
        if budget[0] < 0:
            raise LinkError(errno.ELOOP, os.strerror(errno.ELOOP))
        text = os.readlink("", dir_fd=link.fd)  # the link opened, not its name again
        ours = link.st.st_uid
        trusted = self.follow_any or ours in (0, self.caller)
        try:
            target = self._walk(where, text, budget, True, depth + 1,
                                searchers if trusted else (*searchers, ours))
        except _Barred as barred:
            if barred.uid != ours or trusted:
                raise
            self._barred(where, link, text, barred, searchers)
        except LinkError:
            raise
        except OSError as exc:
            raise LinkError(exc.errno, exc.strerror) from None
        shown = target.kernel_name() or text
        if depth == 0:
            into = pseudo(shown)
            if into:
                raise Refused(link.kernel_name() or text, shown, "it leads into " + into)
            if self.root is not None and not target.inside and not self._in_allowed(target):
                raise Refused(link.kernel_name() or text, shown, "it leads out of the tree")
        theirs = target.st.st_uid
        if not trusted and ours != theirs:
            raise Refused(link.kernel_name() or text, shown,
                          f"the link is owned by {owner(ours)}, its target by {owner(theirs)} "
                          "(--follow-any-link follows it)")
        return target


    def _barred(self, where: Node, link: Node, text: str, barred: _Barred,
                searchers: tuple[int, ...]) -> None:
        """Refuse *link*, whose owner may not search a directory on its way: as owned by
        another than its target's owner where it is (found again without that rule: only
        looked at, never read), else as leading where its owner may not go."""
        ours, shown = link.st.st_uid, link.kernel_name() or text
        try:
            target = self._walk(where, text, [MAX_LINKS], True, 1, searchers)
        except (OSError, Refused, _Barred):
            target = None
        if target is not None and target.st.st_uid != ours:
            raise Refused(shown, target.kernel_name() or text,
                          f"the link is owned by {owner(ours)}, its target by "
                          f"{owner(target.st.st_uid)} (--follow-any-link follows it)")
        raise Refused(shown, text, f"the link is owned by {owner(ours)}, who may not enter "
                                   f"{barred.node.kernel_name() or 'a directory on the way'} "
                                   "(--follow-any-link follows it)")
