"""A docroot others can write to: only regular files inside the tree are read, nothing
blocks, nothing reads without a bound, the rest of the tree is still stored."""

import os
import socket
import subprocess
import sys

import pytest

from conftest import item
from helpers import About

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def memccp(*argv, **kwargs) -> subprocess.CompletedProcess:
    """The checkout's memccp in a child process, bounded in time: a hang fails the test."""
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": ROOT, "LC_ALL": "C.UTF-8"}
    return subprocess.run([sys.executable, "-m", "memccp_py", *map(str, argv)], env=env,
                          capture_output=True, text=True, timeout=300, **kwargs)



@pytest.fixture
def docroot(tmp_path):
    """A docroot with two plain files, and a secret file outside it."""
    doc = tmp_path / "doc"
    (doc / "img").mkdir(parents=True)
    (doc / "index.html").write_bytes(b"<h1>hi</h1>")
    (doc / "img" / "a.gif").write_bytes(b"GIF89a")
    (tmp_path / "secret").write_bytes(b"root:$6$hash")
    return doc


def test_links_out_of_the_tree_are_skipped(memcached, docroot, tmp_path):
    """-r: links to a file or directory outside the tree, or into /proc and /dev, are skipped
    with a warning naming them; the tree's own files are stored; exit 0."""
    (docroot / "robots.txt").symlink_to(tmp_path / "secret")
    (docroot / "etc").symlink_to(tmp_path)
    (docroot / "env.txt").symlink_to("/proc/self/environ")
    (docroot / "zero").symlink_to("/dev/zero")
    (docroot / "rel.txt").symlink_to("../secret")
    result = memccp("-s", memcached.address, f"--docroot={docroot}", "-r", docroot, "-e", "100")
    assert (result.returncode, result.stdout) == (0, "")
    env, *others = result.stderr.splitlines()
    assert env.startswith(f"memccp: {docroot}/env.txt: warning: skipped link to /proc/")
    assert env.endswith("/environ: it leads into /proc")  # /proc/self resolved: memccp's pid
    assert others == [
        f"memccp: {docroot}/etc: warning: skipped link to {tmp_path}: it leads out of the tree",
        f"memccp: {docroot}/rel.txt: warning: skipped link to {tmp_path}/secret: it leads out of the tree",
        f"memccp: {docroot}/robots.txt: warning: skipped link to {tmp_path}/secret: it leads out of the tree",
        f"memccp: {docroot}/zero: warning: skipped link to /dev/zero: it leads into /dev",
    ]
    for key in (b"/robots.txt", b"/env.txt", b"/zero", b"/rel.txt", b"/etc/secret"):
        assert item(memcached, key) is None, key
    assert item(memcached, b"/index.html") == (0, b"<h1>hi</h1>", About(100))
    assert item(memcached, b"/img/a.gif")[1] == b"GIF89a"


def test_links_inside_the_tree_are_followed_and_loops_end(memcached, docroot):
    """-r: a link to a file inside the tree is stored under the link's own URI; a directory
    is copied once, under its own path: links to it, or back to a directory above, are
    skipped with a warning; exit 0."""
    (docroot / "logo.gif").symlink_to("img/a.gif")
    (docroot / "pics").symlink_to(docroot / "img")
    (docroot / "img" / "up").symlink_to("..")
    result = memccp("-s", memcached.address, f"--docroot={docroot}", "-r", docroot)
    assert (result.returncode, result.stdout) == (0, "")
    assert result.stderr.splitlines() == [
        f"memccp: {docroot}/pics: warning: skipped link to {docroot}/img: that directory is "
        "copied already",
        f"memccp: {docroot}/img/up: warning: skipped link to {docroot}: that directory is "
        "copied already",
    ]
    for key in (b"/logo.gif", b"/img/a.gif"):
        assert item(memcached, key) == (0, b"GIF89a", -1), key
    assert item(memcached, b"/pics/a.gif") is None


def test_link_to_a_directory_of_the_docroot_outside_the_walk(memcached, docroot):
    """--docroot DOC -r DOC/site: a link in site/ to a directory of DOC elsewhere is walked
    under the link's path (it stays inside the docroot)."""
    (docroot / "site").mkdir()
    (docroot / "site" / "shared").symlink_to("../img")
    result = memccp("-s", memcached.address, f"--docroot={docroot}", "-r", docroot / "site")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert item(memcached, b"/site/shared/a.gif") == (0, b"GIF89a", -1)
    assert item(memcached, b"/img/a.gif") is None and item(memcached, b"/index.html") is None


def test_links_cannot_multiply_the_tree(memcached, tmp_path):
    """Directories linking to each other (d1/l2 -> ../d2, ...) store each real file once,
    under its own path: links cannot make the walk grow beyond the tree."""
    bomb = tmp_path / "bomb"
    count = 6
    for i in range(count):
        (bomb / f"d{i}").mkdir(parents=True)
        (bomb / f"d{i}" / "f").write_bytes(b"%d" % i)
    for i in range(count):
        for j in range(count):
            if i != j:
                (bomb / f"d{i}" / f"l{j}").symlink_to(f"../d{j}")
    result = memccp("-s", memcached.address, f"--docroot={bomb}", "-r", "-v", bomb)
    assert result.returncode == 0
    assert result.stdout.splitlines() == [f"/d{i}/f" for i in range(count)]
    assert len(result.stderr.splitlines()) == count * (count - 1) + 1  # each link, the summary
    assert all(item(memcached, b"/d%d/f" % i) == (0, b"%d" % i, -1) for i in range(count))


def test_directory_given_to_r_must_stay_in_the_docroot(memcached, docroot, tmp_path):
    """--docroot DOC -r DOC/link where link leads out of DOC: an error naming it, nothing
    from there stored; exit 1."""
    (docroot / "etcdir").symlink_to(tmp_path)
    result = memccp("-s", memcached.address, f"--docroot={docroot}", "-r", docroot / "etcdir")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (f"memccp: {docroot}/etcdir: not copied: it resolves to {tmp_path} "
                             f"and it leads out of the tree ({docroot})\n")
    assert item(memcached, b"/etcdir/secret") is None


def test_explicit_files_follow_links_but_not_into_proc(memcached, docroot, tmp_path):
    """A FILE named on the command line is followed through a link (root's own link here),
    but a link into /proc is refused, naming both; the other file is still stored; exit 1."""
    (tmp_path / "env").symlink_to("/proc/self/environ")
    (tmp_path / "pub").symlink_to(docroot / "index.html")
    result = memccp("-s", memcached.address, tmp_path / "env", tmp_path / "pub")
    assert (result.returncode, result.stdout) == (1, "")
    env, = result.stderr.splitlines()
    assert env.startswith(f"memccp: {tmp_path}/env: not read: link {tmp_path}/env leads to /proc/")
    assert env.endswith("/environ: it leads into /proc")
    assert len(result.stderr.splitlines()) == 1
    assert item(memcached, b"env") is None
    assert item(memcached, b"pub") == (0, b"<h1>hi</h1>", -1)


@pytest.mark.parametrize("buffered", [[], ["-B"]])
def test_special_files_named_are_errors_and_nothing_blocks(memcached, docroot, tmp_path, buffered):
    """A FIFO, a socket and /dev/zero named as FILE: one line each, 'not a regular file',
    nothing blocks or reads without a bound, the files around them are stored; exit 1."""
    fifo, sock_path = tmp_path / "fifo", tmp_path / "sock"
    os.mkfifo(fifo)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(sock_path))
        result = memccp(*buffered, "-s", memcached.address, docroot / "index.html", fifo,
                        sock_path, "/dev/zero", docroot / "img" / "a.gif")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.splitlines() == [
        f"memccp: {fifo}: not a regular file (a FIFO)",
        f"memccp: {sock_path}: not a regular file (a socket)",
        "memccp: /dev/zero: not a regular file (a device)",
    ]
    assert item(memcached, b"index.html")[1] == b"<h1>hi</h1>"
    assert item(memcached, b"a.gif")[1] == b"GIF89a"
    for key in (b"fifo", b"sock", b"zero"):
        assert item(memcached, key) is None


def test_special_files_in_the_tree_are_skipped(memcached, docroot):
    """-r: a FIFO and a socket in the tree are skipped with a warning, as rsync does; the
    regular files are stored; exit 0."""
    os.mkfifo(docroot / "pipe")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(docroot / "img" / "sock"))
        result = memccp("-s", memcached.address, f"--docroot={docroot}", "-r", docroot)
    assert (result.returncode, result.stdout) == (0, "")
    assert result.stderr.splitlines() == [
        f"memccp: {docroot}/pipe: warning: skipped, not a regular file (a FIFO)",
        f"memccp: {docroot}/img/sock: warning: skipped, not a regular file (a socket)",
    ]
    assert item(memcached, b"/index.html")[1] == b"<h1>hi</h1>"
    assert item(memcached, b"/img/a.gif")[1] == b"GIF89a"
    assert item(memcached, b"/pipe") is None and item(memcached, b"/img/sock") is None


@pytest.mark.parametrize("buffered", [[], ["-B"]])
def test_file_larger_than_its_size_says(memcached, docroot, buffered):
    """A file with more bytes than its size says (as /proc files) is 'file changed as we
    read it' and not stored; the next file is; exit 1."""
    result = memccp(*buffered, "-s", memcached.address, "/proc/version", docroot / "index.html")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == "memccp: /proc/version: file changed as we read it: not stored\n"
    assert item(memcached, b"version") is None
    assert item(memcached, b"index.html")[1] == b"<h1>hi</h1>"


def test_deep_tree(memcached, tmp_path):
    """-r walks a tree 1,000 directories deep (no recursion limit); the deepest file is stored."""
    deep = tmp_path / "deep"
    path = str(deep)
    for _ in range(1001):  # os.makedirs itself recurses too deep for this
        os.mkdir(path)
        path += "/d"
    with open(path.rpartition("/")[0] + "/leaf.txt", "wb") as handle:
        handle.write(b"bottom")
    try:
        result = memccp("-s", memcached.address, "-r", deep)
    finally:  # pytest's own clean-up recurses too deep for this tree
        os.unlink(path.rpartition("/")[0] + "/leaf.txt")
        while path != str(deep):
            path = path.rpartition("/")[0]
            os.rmdir(path)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert item(memcached, b"leaf.txt") == (0, b"bottom", -1)


def test_link_loop_is_a_warning_like_a_broken_link(memcached, docroot):
    """-r: a link loop (a -> b -> a) is skipped with a warning, as a broken link is: no file
    is behind it, so it fails nothing; the tree's files are stored; exit 0."""
    (docroot / "a").symlink_to("b")
    (docroot / "b").symlink_to("a")
    (docroot / "gone").symlink_to("nothing")
    result = memccp("-s", memcached.address, f"--docroot={docroot}", "-r", docroot)
    assert (result.returncode, result.stdout) == (0, "")
    assert result.stderr.splitlines() == [
        f"memccp: {docroot}/a: warning: skipped link: too many levels of symbolic links",
        f"memccp: {docroot}/b: warning: skipped link: too many levels of symbolic links",
        f"memccp: {docroot}/gone: warning: skipped broken link"]
    assert item(memcached, b"/img/a.gif") == (0, b"GIF89a", -1)


def test_links_into_an_allowed_directory_are_followed(memcached, docroot, tmp_path):
    """--allow-links-into=DIR: in a tree, links into DIR (a file there, or DIR's own
    subdirectory, walked) are followed, as Debian's web apps link into /usr/share/javascript;
    a link to anything else outside the tree is still skipped; without the option, all are."""
    lib = tmp_path / "javascript"
    (lib / "jquery").mkdir(parents=True)
    (lib / "jquery" / "jquery.js").write_bytes(b"/*! jQuery */")
    (tmp_path / "secret.js").write_bytes(b"not for the web")
    (docroot / "_static").mkdir()
    (docroot / "_static" / "jquery.js").symlink_to(lib / "jquery" / "jquery.js")
    (docroot / "_static" / "lib").symlink_to(lib / "jquery")
    (docroot / "_static" / "secret.js").symlink_to(tmp_path / "secret.js")
    result = memccp("-s", memcached.address, f"--docroot={docroot}", "-r", docroot,
                    f"--allow-links-into={lib}")
    assert (result.returncode, result.stdout, result.stderr) == (
        0, "", f"memccp: {docroot}/_static/secret.js: warning: skipped link to {tmp_path}/secret.js: "
               "it leads out of the tree\n")
    assert item(memcached, b"/_static/jquery.js") == (0, b"/*! jQuery */", -1)
    assert item(memcached, b"/_static/lib/jquery.js") == (0, b"/*! jQuery */", -1)
    assert item(memcached, b"/_static/secret.js") is None
    without = memccp("-s", memcached.address, "--docroot", docroot, "-r", docroot)
    assert without.returncode == 0
    assert without.stderr.count("it leads out of the tree") == 3
