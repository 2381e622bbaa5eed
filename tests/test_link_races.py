"""Issue 18: root runs memccp over a docroot that nobody (uid 65534) can write, and nobody
swaps files and directories for links to root's files while it runs. A link is followed
only when it is root's, the caller's or its target owner's (--follow-any-link: any), so
nothing of root's is ever stored; the deploy layout (a link to a release) keeps working."""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterator, List, NamedTuple, Optional

import pytest

from conftest import Memcached, dump_items, item, text_command

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SWAPPER = Path(__file__).with_name("swapper.py")
NOBODY = 65534
SECRET = b"ROOT-SECRET-"
OWNED = "the link is owned by nobody (65534), its target by root (0) (--follow-any-link follows it)"
RUNS = 40  # runs of memccp per race: the unfixed code stores a secret within a few

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                                reason="needs root and setpriv: the attacker is nobody")


def memccp(*argv: object, stdin: Optional[str] = None) -> subprocess.CompletedProcess:
    """The checkout's memccp, in-process in a child, as root, bounded in time."""
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": ROOT, "LC_ALL": "C.UTF-8"}
    return subprocess.run([sys.executable, "-m", "memccp_py", *map(str, argv)], env=env,
                          input=stdin, capture_output=True, text=True, timeout=300)


def as_nobody(path: Path) -> Path:
    """Give *path* (not following a link) to nobody."""
    os.lchown(path, NOBODY, NOBODY)
    return path


def nobody_link(path: Path, target: object) -> Path:
    """A symbolic link *path* -> *target* owned by nobody, as nobody would make it."""
    os.symlink(target, path)
    return as_nobody(path)


def leaked(server: Memcached) -> List[bytes]:
    """The keys whose value holds any of root's secret bytes."""
    return sorted(key for key, (_, value, _) in dump_items(server).items() if SECRET in value)


class Site(NamedTuple):
    top: Path  # root's, 0755: every user may enter
    www: Path  # nobody's docroot: img/a.gif, img/b.gif, index.html
    private: Path  # root's: shadow (0600), keys/ (a.gif, b.gif, id_rsa: 0600)


@pytest.fixture
def site() -> Iterator[Site]:
    """A docroot nobody owns and root's secrets beside it, in a directory all may enter."""
    top = Path(tempfile.mkdtemp())  # pytest's tmp_path is closed to other users
    top.chmod(0o755)
    www, private = top / "www", top / "private"
    (www / "img").mkdir(parents=True)
    (private / "keys").mkdir(parents=True)
    (www / "index.html").write_bytes(b"<h1>hi</h1>")
    for name in ("a.gif", "b.gif"):
        (www / "img" / name).write_bytes(b"GIF89a " + name.encode())
    for path in (www, www / "index.html", www / "img", *(www / "img").iterdir()):
        as_nobody(path)
    (private / "shadow").write_bytes(SECRET + b"shadow")
    for name in ("a.gif", "b.gif", "id_rsa"):
        (private / "keys" / name).write_bytes(SECRET + b"keys/" + name.encode())
    for path in (private / "shadow", *(private / "keys").iterdir()):
        path.chmod(0o600)
    yield Site(top, www, private)
    shutil.rmtree(top)


class Swapper:
    """tests/swapper.py running as nobody, exchanging each pair of names in a loop."""

    def __init__(self, *names: Path) -> None:
        self.process = subprocess.Popen(
            ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
             "/usr/bin/python3", "-I", "-c", SWAPPER.read_text(), "60", *map(str, names)],
            cwd="/", stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        ready = self.process.stdout.readline()  # an event: its first exchange is done
        assert ready == "ready\n", (ready, self.process.communicate(timeout=300))

    def stop(self) -> int:
        """Stop it (every pair back as it was); the number of exchanges it made."""
        out, err = self.process.communicate(timeout=300)  # closing stdin stops it
        assert (self.process.returncode, err) == (0, ""), (out, err)
        swaps = int(out.split("swaps ", 1)[1].split()[0])
        assert swaps > 0, out
        return swaps


@pytest.fixture
def swapper() -> Iterator[Callable[..., Swapper]]:
    """Start Swapper(a, b, ...); any still running is ended after the test."""
    started = []

    def start(*names: Path) -> Swapper:
        started.append(Swapper(*names))
        return started[-1]

    yield start
    for one in started:
        if one.process.poll() is None:
            one.process.terminate()
            one.process.communicate(timeout=300)


def named(run: int, stderr: str, *shown: str) -> None:
    """Each line of *stderr* (of race run *run*) is memccp's and names a file (starts with
    one of *shown*): the run did not abort as a whole, no internal error."""
    for line in stderr.splitlines():
        assert line.startswith(tuple(f"memccp: {s}" for s in shown)), f"run {run}: {stderr}"
        assert "internal error" not in line and "Traceback" not in line, f"run {run}: {stderr}"


def test_r_walk_while_a_directory_is_swapped_for_a_link(memcached, site, swapper):
    """-r: while nobody exchanges img/ (linked to from d/) with a link to root's keys/,
    no run stores a byte of root's files, and none aborts."""
    www = site.www
    (www / "d").mkdir()
    for number in range(20):
        nobody_link(www / "d" / f"l{number:02}.gif", f"../img/{'ab'[number % 2]}.gif")
    as_nobody(www / "d")
    nobody_link(www / "x", site.private / "keys")
    attacker = swapper(www / "img", www / "x")
    refused = 0  # runs that met nobody's link and refused it by its owner
    for run in range(RUNS):
        result = memccp("-s", memcached.address, f"--docroot={www}", "-r", www)
        assert (result.returncode in (0, 1), result.stdout, leaked(memcached)) == (True, "", []), \
            f"run {run}: {result}"
        named(run, result.stderr, f"{www}/")
        refused += OWNED in result.stderr
        text_command(memcached, b"flush_all")
    attacker.stop()
    assert refused > 0  # the race was on while memccp ran
    result = memccp("-s", memcached.address, f"--docroot={www}", "-r", www)
    assert (result.returncode, result.stdout) == (0, ""), result
    line = f"memccp: {www}/x: warning: skipped link to {site.private}/keys: "
    assert result.stderr in (line + "it leads out of the tree\n", line + OWNED + "\n")
    assert item(memcached, b"/d/l00.gif") == (0, b"GIF89a a.gif", -1)


#: The admin's loop of the seed: one memccp per file found, keyed by its path.
ADMIN_LOOP = """for file in $(find $BASE -type f -name '*.gif' | sed "s#$BASE##"); do
    memccp --key=$file --servers=$SERVER $BASE$file
done"""


@pytest.mark.parametrize("helper", ["default", "off"])
@pytest.mark.parametrize("swapped", ["directory", "file"])
def test_admin_loop_while_swapped(memcached, site, swapper, swapped, helper):
    """The seed's shell loop (find, then memccp FILE per file) while nobody exchanges img/
    with a link to root's keys/, or img/a.gif with a link to root's shadow: no run stores
    a byte of root's files; refusals name the file."""
    www = site.www
    if swapped == "directory":
        attacker = swapper(www / "img", nobody_link(www / "x", site.private / "keys"))
    else:
        attacker = swapper(www / "img" / "a.gif",
                           nobody_link(www / "img" / "swap", site.private / "shadow"))
    env = {"PATH": f"{ROOT}/bin:/usr/bin:/bin", "BASE": str(www), "SERVER": memcached.address,
           "LC_ALL": "C.UTF-8", **({"MEMCCP_HELPER": "off"} if helper == "off" else {})}
    for run in range(RUNS):
        result = subprocess.run(["/bin/sh", "-c", ADMIN_LOOP], env=env, capture_output=True,
                                text=True, timeout=300)
        assert (result.returncode in (0, 1), result.stdout, leaked(memcached)) == (True, "", []), \
            f"run {run}: {result}"
        own = [line for line in result.stderr.splitlines() if not line.startswith("find: ")]
        named(run, "\n".join(own), f"{www}/")  # find meets the race too: its lines are left out
        text_command(memcached, b"flush_all")
    attacker.stop()


def test_files_from_with_docroot_while_swapped(memcached, site, swapper):
    """--files-from with --docroot while nobody exchanges img/ with a link to root's keys/
    and index.html with a link to root's file in the docroot: nothing of root's is
    stored, the run never aborts, each error names its file."""
    www = site.www
    (www / ".htpasswd").write_bytes(SECRET + b"htpasswd")  # root's, in the docroot
    (www / ".htpasswd").chmod(0o600)
    attacker = swapper(www / "img", nobody_link(www / "x", site.private / "keys"),
                       www / "index.html", nobody_link(www / "swap", ".htpasswd"))
    listed = ("index.html", "img/a.gif", "img/b.gif")
    names = "".join(f"{www}/{name}\n" for name in listed)
    refused = 0  # runs that met nobody's link and refused it by its owner
    for run in range(RUNS):
        result = memccp("-s", memcached.address, f"--docroot={www}", "--files-from=-",
                        stdin=names * 5)
        assert (result.returncode in (0, 1), result.stdout, leaked(memcached)) == (True, "", []), \
            f"run {run}: {result}"
        named(run, result.stderr, *(f"{www}/{name}: " for name in listed))
        refused += OWNED in result.stderr
        text_command(memcached, b"flush_all")
    attacker.stop()
    assert refused > 0  # the race was on while memccp ran


@pytest.mark.parametrize("docroot, target", [
    (False, "private/shadow"),  # FILE: the owner rule
    (True, "private/shadow"),  # --docroot: out of the tree, and the owner rule
    (True, "www/.htpasswd"),  # --docroot, root's file in the tree: the owner rule
])
def test_file_turned_link_to_roots_file(memcached, site, docroot, target):
    """A FILE that nobody replaced with a link to a file of root's: not read, one line
    naming the file, the link and its target; the other FILE stored; exit 1."""
    www, gif = site.www, site.www / "img" / "a.gif"
    (www / ".htpasswd").write_bytes(SECRET + b"htpasswd")  # root's, in the docroot
    (www / ".htpasswd").chmod(0o600)
    gif.unlink()
    nobody_link(gif, site.top / target)
    result = memccp("-s", memcached.address, *[f"--docroot={www}"] * docroot, gif,
                    www / "index.html")
    line = f"memccp: {gif}: not read: link {gif} leads to {site.top / target}: "
    refusals = [line + OWNED + "\n"]
    if docroot and target.startswith("private"):  # either rule refuses it
        refusals.append(line + "it leads out of the tree\n")
    assert (result.returncode, result.stdout, result.stderr in refusals) == (1, "", True), result
    assert dump_items(memcached) == {b"/index.html" if docroot else b"index.html":
                                     (0, b"<h1>hi</h1>", -1)}


def test_directory_turned_link_to_roots_directory(memcached, site):
    """A FILE whose directory nobody replaced with a link to root's keys/: not read, one
    line naming the file, the link and its target; exit 1; nothing stored."""
    www = site.www
    shutil.rmtree(www / "img")
    nobody_link(www / "img", site.private / "keys")
    result = memccp("-s", memcached.address, "--key=/img/a.gif", www / "img" / "a.gif")
    assert (result.returncode, result.stdout, result.stderr, dump_items(memcached)) == (
        1, "", f"memccp: {www}/img/a.gif: not read: link {www}/img leads to {site.private}/keys: "
        f"{OWNED}\n", {})


def test_docroot_that_is_nobodys_link_to_roots_directory(memcached, site):
    """--docroot DIR -r DIR, DIR a link of nobody's to a directory of root's: refused at
    once in one line naming --docroot and the owners; exit 1; nothing stored."""
    home = site.top / "home"
    home.mkdir()
    public = nobody_link(as_nobody(home) / "public_html", site.private)
    result = memccp("-s", memcached.address, f"--docroot={public}", "-r", public)
    assert (result.returncode, result.stdout, dump_items(memcached)) == (1, "", {}), result
    line, = result.stderr.splitlines()
    assert line.startswith(f"memccp: --docroot {public}: ") and OWNED in line, line


def test_deploy_layout_still_works(memcached, site):
    """The deploy user's current -> releases/2026 (all theirs) is followed, as --docroot
    and -r, and in a FILE: every file stored with its bytes; exit 0, nothing said."""
    release = site.top / "site" / "releases" / "2026"
    (release / "css").mkdir(parents=True)
    (release / "index.html").write_bytes(b"<h1>2026</h1>")
    (release / "css" / "a.css").write_bytes(b"body{}")
    for path in (site.top / "site", release.parent, release, release / "css",
                 release / "index.html", release / "css" / "a.css"):
        as_nobody(path)
    current = nobody_link(site.top / "site" / "current", "releases/2026")
    result = memccp("-s", memcached.address, f"--docroot={current}", "-r", current)
    assert (result.returncode, result.stdout, result.stderr, dump_items(memcached)) == (
        0, "", "", {b"/index.html": (0, b"<h1>2026</h1>", -1), b"/css/a.css": (0, b"body{}", -1)})
    text_command(memcached, b"flush_all")
    result = memccp("-s", memcached.address, current / "index.html")
    assert (result.returncode, result.stdout, result.stderr, dump_items(memcached)) == (
        0, "", "", {b"index.html": (0, b"<h1>2026</h1>", -1)})


def test_follow_any_link_follows_nobodys_link(memcached, site):
    """--follow-any-link: root chose to follow any link, so nobody's link to root's
    shadow is read and stored; exit 0, nothing said."""
    gif = site.www / "img" / "a.gif"
    gif.unlink()
    nobody_link(gif, site.private / "shadow")
    result = memccp("-s", memcached.address, "--follow-any-link", "--key=/img/a.gif", gif)
    assert (result.returncode, result.stdout, result.stderr, dump_items(memcached)) == (
        0, "", "", {b"/img/a.gif": (0, SECRET + b"shadow", -1)})


@pytest.mark.parametrize("argv", [["-"], ["--files-from=-"]])
@pytest.mark.parametrize("command", ["python3 -m memccp_py", "bin/memccp"])
def test_standard_input_closed(memcached, command, argv):
    """'-' or --files-from=- with standard input closed (<&-), in-process or through the
    warm helper: one line saying so, no internal error; exit 1; nothing stored."""
    env = {"PATH": f"{ROOT}/bin:/usr/bin:/bin", "PYTHONPATH": ROOT, "LC_ALL": "C.UTF-8"}
    program = [sys.executable, "-m", "memccp_py"] if command.startswith("python3") else ["memccp"]
    result = subprocess.run(["/bin/sh", "-c", 'exec "$@" <&-', "sh", *program,
                             "-s", memcached.address, *argv],
                            env=env, capture_output=True, text=True, timeout=300)
    assert (result.returncode, result.stdout, dump_items(memcached)) == (1, "", {}), result
    line, = result.stderr.splitlines()
    assert line.startswith("memccp: ") and "standard input" in line, line
    assert "internal error" not in line, line
