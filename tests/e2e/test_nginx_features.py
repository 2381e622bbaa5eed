"""nginx features end to end with the installed memccp: bulk loads of odd names
(--escape=nginx), gzip'd items (memcached_gzip_flag) and upstreams of three
memcached servers placed as nginx's hash / hash consistent expects."""

import gzip
import os
import random
import subprocess
import urllib.parse

import pytest

from conftest import text_get
from .conftest import memcached_location, run_installed, upstream_block

pytestmark = [pytest.mark.installed, pytest.mark.nginx]

ODD_NAMES = ["/a b.gif", "/dir with space/ñandú €.png", "/100% real.css", "/plus+and&amp;=x.js",
             "/tilde~(paren)[br].txt", "/deep/er/est/ok.gif", "/日本語/ファイル.html", "/semi;colon,comma.gif",
             "/new\nline\ttab.txt"]


def odd_files(count: int = 60) -> dict:
    rng = random.Random(count)
    files = {name: rng.randbytes(rng.randrange(1, 5000)) for name in ODD_NAMES}
    for i in range(count):
        files[f"/bulk/{i % 7}/f {i}-é.bin"] = rng.randbytes(rng.randrange(0, 20000))
    return files


def bulk_load(memccp, base, *options):
    """find BASE -type f -print0 | memccp --files-from=- -0 --docroot=BASE --escape=nginx OPTIONS."""
    names = subprocess.run(["find", str(base), "-type", "f", "-print0"], capture_output=True,
                           check=True).stdout
    return run_installed([memccp, "--files-from=-", "-0", f"--docroot={base}", "--escape=nginx", *options],
                         input=names.decode("utf-8", "surrogateescape"))


def nginx_escape(key: bytes) -> bytes:
    """$memcached_key as nginx's memcached module sends it (ngx_escape_uri, memcached table):
    space, % and the bytes 0x00-0x1F as %XX, everything else as it is. Written here from
    nginx's table, not taken from memccp_py."""
    return b"".join(b"%%%02X" % c if c <= 0x20 or c == 0x25 else bytes([c]) for c in key)


def quoted(path: str) -> str:
    return urllib.parse.quote(path, safe="/")


def test_bulk_odd_names_served_by_nginx(memccp_program, memcached, nginx, web_root):
    """One bulk run stores names with spaces, %, UTF-8; nginx serves each byte-identical."""
    files = odd_files()
    base = web_root(files)
    server = nginx(memcached_location(memcached.address))
    result = bulk_load(memccp_program, base, f"--servers={memcached.address}")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    for path, content in files.items():
        status, body, _ = server.get(quoted(path))
        assert (status, body == content) == (200, True), path


def test_gzip_flag(memccp_program, memcached, nginx, web_root):
    """--gzip=2 with memcached_gzip_flag 2: Content-Encoding gzip, the original after gunzip."""
    css = b"body { color: red }\n" * 500
    base = web_root({"/site.css": css, "/noise.bin": os.urandom(3000)})
    server = nginx(memcached_location(memcached.address, "memcached_gzip_flag 2;"))
    result = run_installed([memccp_program, f"--servers={memcached.address}", f"--docroot={base}",
                            "--gzip=2", "-r", str(base)])
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    status, body, headers = server.get("/site.css")
    assert (status, headers.get("Content-Encoding")) == (200, "gzip")
    assert len(body) < len(css) and gzip.decompress(body) == css
    status, body, headers = server.get("/noise.bin")  # random bytes do not shrink: stored plain
    assert (status, headers.get("Content-Encoding")) == (200, None)
    assert body == (base / "noise.bin").read_bytes()


@pytest.mark.parametrize("directive, distribution", [
    ("hash $memcached_key consistent;", "nginx-consistent"),
    ("hash $memcached_key;", "nginx-hash"),
])
@pytest.mark.parametrize("weights", [(1, 1, 1), (1, 3, 2)])
def test_three_server_upstream(memccp_program, memcached_cluster, nginx, web_root,
                               directive, distribution, weights):
    """With --distribution matching the upstream's hash (and weights), nginx finds every file,
    and each file is on exactly one of the three servers."""
    files = odd_files(120)
    base = web_root(files)
    servers = [f"{s.address} weight={w}" for s, w in zip(memcached_cluster, weights)]
    server = nginx(memcached_location("mc"), upstreams=upstream_block("mc", servers, directive))
    spec = ",".join(f"{s.address}:{w}" for s, w in zip(memcached_cluster, weights))
    result = bulk_load(memccp_program, base, f"--servers={spec}", f"--distribution={distribution}")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    held = [0, 0, 0]
    for path, content in files.items():
        status, body, _ = server.get(quoted(path))
        assert (status, body == content) == (200, True), path
        escaped = nginx_escape(path.encode())
        copies = [text_get(s, escaped) is not None for s in memcached_cluster]
        assert sum(copies) == 1, path
        held = [h + c for h, c in zip(held, copies)]
    assert min(held) > 0, held
