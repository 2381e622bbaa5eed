"""nginx behind twemproxy end to end: memccp stores a site through twemproxy (nutcracker,
which speaks only the text protocol), and nginx's memcached_pass to the same twemproxy
serves every file byte-identical; a file never stored is nginx's 404."""

import pytest

from conftest import dump_items
from .conftest import memcached_location, run_installed
from .test_nginx_features import bulk_load, nginx_escape, odd_files, quoted

pytestmark = [pytest.mark.installed, pytest.mark.nginx]


def test_nginx_serves_through_twemproxy(memccp_program, twemproxy, nginx, web_root):
    """A bulk load of odd names through twemproxy (auto: text, no statistics, said under -v);
    nginx finds every file through twemproxy; both backends hold a share; exit 0."""
    files = odd_files(40)
    base = web_root(files)
    server = nginx(memcached_location(twemproxy.address))
    result = bulk_load(memccp_program, base, f"--servers={twemproxy.address}", "-v", "--verify")
    at = f"memccp: server {twemproxy.address}"
    size = sum(len(content) for content in files.values())
    assert (result.returncode, sorted(result.stdout.splitlines())) == (
        0, sorted(nginx_escape(p.encode()).decode() for p in files))
    assert result.stderr == (
        f"{at} rejects the binary protocol (it closed the connection at the first binary "
        "request): speaking text to it\n"
        f"{at} answers no statistics (a proxy?): evictions and item sizes there are unknown\n"
        f"memccp: {len(files)} files, {len(files)} stored ({size} bytes), 0 failed\n"
        f"memccp: verified {len(files)} items, 0 missing or different\n")
    for path, content in files.items():
        status, body, _ = server.get(quoted(path))
        assert (status, body == content) == (200, True), path
    assert server.get("/never/stored.gif")[0] == 404
    held = [dump_items(backend) for backend in twemproxy.backends]
    assert all(held) and sum(map(len, held)) == len(files)


def test_single_file_through_twemproxy_text(memccp_program, twemproxy, nginx, web_root):
    """--protocol=text --key=/img/a.gif through twemproxy: silent, exit 0; nginx serves it."""
    base = web_root({"/img/a.gif": b"GIF89a\x00\r\nEND\r\n"})
    server = nginx(memcached_location(twemproxy.address))
    result = run_installed([memccp_program, "--protocol=text", "--key=/img/a.gif",
                            f"--servers={twemproxy.address}", str(base / "img/a.gif")])
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert server.get("/img/a.gif")[:2] == (200, b"GIF89a\x00\r\nEND\r\n")
