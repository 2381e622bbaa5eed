"""A docroot an attacker can write to, loaded as root with memccp and served
by a real nginx: what leaves the tree, /proc and special files are never served."""

import os

import pytest

from .conftest import memcached_location, run_installed

pytestmark = [pytest.mark.installed, pytest.mark.nginx]


def test_hostile_tree_serves_only_the_tree(memccp_program, memcached, nginx, web_root, tmp_path):
    """Links to a secret and to /proc/self/environ, a FIFO and a link loop in the docroot:
    nginx serves the real files and none of those; memccp warns of each and exits 0."""
    secret = tmp_path / "shadow"
    secret.write_bytes(b"root:$6$secret-hash")
    base = web_root({"/index.html": b"<h1>home</h1>", "/img/a.gif": b"GIF89a"})
    (base / "robots.txt").symlink_to(secret)
    (base / "env.txt").symlink_to("/proc/self/environ")
    (base / "img" / "loop").symlink_to("..")
    (base / "logo.gif").symlink_to("img/a.gif")
    os.mkfifo(base / "pipe")
    server = nginx(memcached_location(memcached.address))
    result = run_installed([memccp_program, f"--servers={memcached.address}", f"--docroot={base}",
                            "-r", str(base)], env={"MEMCACHED_PASSWORD": "do-not-serve"})
    assert (result.returncode, result.stdout) == (0, "")
    warnings = sorted(line.split(": warning: ")[0] for line in result.stderr.splitlines())
    assert warnings == [f"memccp: {base}/{name}" for name in
                        ("env.txt", "img/loop", "pipe", "robots.txt")], result.stderr
    for uri in ("/robots.txt", "/env.txt", "/pipe", "/img/loop/index.html"):
        status, body, _ = server.get(uri)
        assert (status, b"secret" in body, b"do-not-serve" in body) == (404, False, False), uri
    assert server.get("/index.html")[:2] == (200, b"<h1>home</h1>")
    assert server.get("/logo.gif")[:2] == (200, b"GIF89a")
    assert server.get("/img/a.gif")[:2] == (200, b"GIF89a")
