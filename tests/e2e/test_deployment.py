"""The deployment end to end: memccp (the checkout, or the installed package with
MEMCCP_E2E=installed) fills memcached, nginx serves it."""

import gzip
import os
import random
from pathlib import Path

import pytest

from .conftest import DASH, SEED_LOOP, SYSTEM_ENV, have, memcached_location, run_installed

pytestmark = [pytest.mark.installed, pytest.mark.nginx]


def gif_files(count: int = 20, seed: int = 20261125) -> dict:
    """*count* .gif files of random binary content in nested directories (names
    without spaces), keyed by URI path; also a .css that the loop must skip."""
    rng = random.Random(seed)
    dirs = ["/img", "/img/icons", "/img/icons/small", "/static/a/b/c", "/x"]
    files = {}
    for number in range(count):
        size = rng.choice([1, 2, 255, 1024, 4096, 65536, 200_000]) + rng.randrange(100)
        content = b"GIF89a" + bytes([0, 13, 10, 255]) + rng.randbytes(size)
        files[f"{rng.choice(dirs)}/file-{number:02d}.gif"] = content
    files["/css/site.css"] = b"body { margin: 0 }\n"
    return files


def test_seed_loop_then_nginx_serves_every_file_byte_identical(
        memccp_program, memcached, nginx, web_root):
    """The deployment's dash loop copies every .gif under its URI path, silently and with
    exit 0; nginx then serves each one byte-identical, and a missing path is a 404."""
    files = gif_files()
    base = web_root(files)
    server = nginx(memcached_location(memcached.address))

    path = f"{os.path.dirname(memccp_program)}:{SYSTEM_ENV['PATH']}"  # memccp as the loop finds it
    result = run_installed([DASH, "-c", SEED_LOOP], env={"BASE": str(base), "PORT": str(memcached.port),
                                                         "PATH": path})
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")

    for path, content in files.items():
        status, body, _ = server.get(path)
        if path.endswith(".gif"):
            assert (status, len(body), body == content) == (200, len(content), True), path
        else:  # the loop copies .gif files only: nginx falls back to 404
            assert status == 404, path
    status, _, _ = server.get("/img/no-such-file.gif")
    assert status == 404
    # nginx asked memcached, which missed; @fallback answered (error_log at level info).
    assert 'key: "/img/no-such-file.gif" was not found by memcached' in server.error_log.read_text()


def test_version_of_installed_memccp(installed_memccp):
    """/usr/bin/memccp --version prints one line naming memccp-py on stdout and exits 0."""
    result = run_installed([installed_memccp, "--version"])
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.startswith("memccp v") and "memccp-py" in result.stdout
    assert result.stdout.count("\n") == 1


def test_man_page_is_memccp_py(installed_memccp):
    """man -w memccp finds memccp-py's page (libmemcached-tools' one is diverted aside)."""
    if not have("man"):
        pytest.skip("man-db is not installed")
    result = run_installed(["man", "-w", "memccp"])
    assert (result.returncode, result.stdout, result.stderr) == (
        0, "/usr/share/man/man1/memccp.1.gz\n", "")
    page = gzip.decompress(Path(result.stdout.strip()).read_bytes()).decode()
    assert "copy files into memcached under chosen keys" in page
