"""nginx-ready keys and the package's extras, end to end with the installed memccp-py:
--suffix and --index behind a real nginx with `set $memcached_key "$uri?$args";`, the
installed memccp-preload@ unit's command re-warming a restarted memcached, and the
installed bash completion.

Expected keys are written out by hand from nginx's rules ("$uri?$args" for a request
without arguments: the decoded URI, escaped, then "?"), not computed by memccp_py."""

import os
import subprocess
import urllib.parse

import pytest

from conftest import Memcached, start_memcached, stop, text_command, text_get, wait_until_answers
from systemd_unit import unit_command
from .conftest import MEMCCP, SYSTEM_ENV, memcached_location, run_installed

pytestmark = [pytest.mark.installed, pytest.mark.nginx]

UNIT = "/usr/lib/systemd/system/memccp-preload@.service"
EXAMPLE = "/etc/memccp-py/example.conf"
MEMCACHED = "/usr/bin/memcached"

SITE = {"/index.html": b"<h1>top</h1>", "/docs/index.html": b"<h1>docs</h1>",
        "/docs/guide.html": b"<p>guide</p>", "/img/logo.gif": b"GIF89a\x01\x00\x01\x00",
        "/my docs/index.html": b"<p>spaced</p>"}


def stored_keys(server) -> set:
    reply = text_command(server, b"lru_crawler metadump all")
    return {urllib.parse.unquote_to_bytes(line.split()[0][4:])
            for line in reply.splitlines() if line.startswith(b"key=")}


@pytest.mark.parametrize("key, prefix, keys", [
    ("$uri?$args", [], {b"/index.html?", b"/?", b"/docs/index.html?", b"/docs/?",
                        b"/docs/guide.html?", b"/img/logo.gif?", b"/my%20docs/index.html?",
                        b"/my%20docs/?"}),
    ("$host$uri?$args", ["--prefix=127.0.0.1"],
     {b"127.0.0.1/index.html?", b"127.0.0.1/?", b"127.0.0.1/docs/index.html?", b"127.0.0.1/docs/?",
      b"127.0.0.1/docs/guide.html?", b"127.0.0.1/img/logo.gif?", b"127.0.0.1/my%20docs/index.html?",
      b"127.0.0.1/my%20docs/?"}),
])
def test_suffix_and_index_served_by_nginx(memccp_program, memcached, nginx, web_root,
                                          key, prefix, keys):
    """--suffix=? --index=index.html: nginx keyed by "$uri?$args" serves every file, / and
    /docs/ from their index.html, "/my docs/" escaped; a directory without an index and a
    request with arguments fall back (404)."""
    base = web_root(SITE)
    server = nginx(memcached_location(memcached.address, key=key))
    result = run_installed([memccp_program, f"--servers={memcached.address}", f"--docroot={base}",
                            "--recursive", "--escape=nginx", "--suffix=?", "--index=index.html",
                            *prefix, str(base)])
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert stored_keys(memcached) == keys
    expected = {"/": SITE["/index.html"], "/docs/": SITE["/docs/index.html"],
                "/my%20docs/": SITE["/my docs/index.html"],
                **{urllib.parse.quote(path): data for path, data in SITE.items()}}
    for path, data in expected.items():
        assert server.get(path)[:2] == (200, data), path
    assert server.get("/img/")[0] == 404
    assert server.get("/docs/guide.html?v=2")[0] == 404


def start_memcached_on(port: int) -> Memcached:
    """memcached on 127.0.0.1:*port* (a restart on the port the configuration names)."""
    user = ["-u", "root"] if os.geteuid() == 0 else []
    process = subprocess.Popen([MEMCACHED, "-l", "127.0.0.1", "-p", str(port), "-U", "0", *user],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_answers("127.0.0.1", port, process)
    except Exception:
        process.kill()
        raise
    return Memcached("127.0.0.1", port, process)


def test_preload_unit_rewarms_a_restarted_memcached(installed_memccp, nginx, web_root, tmp_path):
    """The installed unit's command, with the installed example configuration: nginx serves the
    docroot; after memcached restarts empty, the command started before memcached listens
    again (--wait) fills it, and nginx serves it again."""
    first = start_memcached()
    port = first.port
    base = web_root(SITE)
    conf = tmp_path / "www.conf"
    with open(EXAMPLE, encoding="utf-8") as example:
        lines = example.read().splitlines()
    conf.write_text("\n".join(f"DOCROOT={base}" if line.startswith("DOCROOT=") else
                              f"SERVERS=127.0.0.1:{port}" if line.startswith("SERVERS=") else line
                              for line in lines) + "\n")
    argv = unit_command(UNIT, conf)
    assert argv[0] == MEMCCP
    server = nginx(memcached_location(f"127.0.0.1:{port}", "memcached_gzip_flag 2; gunzip on;",
                                      key="$uri?$args"))
    try:
        result = run_installed(argv)
        assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
        assert server.get("/docs/")[:2] == (200, SITE["/docs/index.html"])
    finally:
        stop(first)  # memcached restarts: empty, and not listening for a moment
    preload = subprocess.Popen(argv, env=SYSTEM_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    restarted = None
    try:
        restarted = start_memcached_on(port)
        out, err = preload.communicate(timeout=120)
        assert (preload.returncode, out, err) == (0, b"", b"")
        assert server.get("/")[:2] == (200, SITE["/index.html"])
        assert server.get("/docs/")[:2] == (200, SITE["/docs/index.html"])
        assert server.get("/img/logo.gif")[:2] == (200, SITE["/img/logo.gif"])
        assert text_get(restarted, b"/docs/?") == (0, SITE["/docs/index.html"])
    finally:
        if preload.poll() is None:
            preload.kill()
            preload.communicate()
        if restarted is not None:
            stop(restarted)


def test_preload_unit_installed_not_enabled(installed_memccp):
    """systemd-analyze verify accepts the installed unit; the package enabled nothing."""
    result = run_installed(["systemd-analyze", "verify", "memccp-preload@www.service"])
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert not os.path.exists("/etc/systemd/system/memcached.service.wants/memccp-preload@.service")
    assert not any("memccp" in name for _, _, names in os.walk("/etc/systemd/system") for name in names)


def test_bash_completion_installed(installed_memccp):
    """bash-completion loads the installed completion for memccp on demand; it completes
    the new options."""
    program = ("source /usr/share/bash-completion/bash_completion && _completion_loader memccp; "
               "complete -p memccp && COMP_WORDS=(memccp --suf) && COMP_CWORD=1 && _shtab_memccp && "
               "printf '%s\\n' \"${COMPREPLY[@]}\"")
    result = run_installed(["bash", "--norc", "--noprofile", "-c", program])
    assert (result.returncode, result.stdout, result.stderr) == (
        0, "complete -o filenames -F _shtab_memccp memccp\n--suffix\n", "")


def readme_debian() -> str:
    import gzip

    with gzip.open("/usr/share/doc/memccp-py/README.Debian.gz", "rt", encoding="utf-8") as readme:
        return readme.read()


def readme_server_block(text: str) -> str:
    """The inside of README.Debian's nginx ``server { ... }`` block, without ``listen``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "server {")
    depth, body = 0, []
    for line in lines[start:]:
        depth += line.count("{") - line.count("}")
        body.append(line)
        if depth == 0:
            break
    return "\n".join(line for line in body[1:-1] if not line.strip().startswith("listen "))


def readme_memccp_command(text: str) -> list:
    """README.Debian's memccp command line that fills memcached for that block."""
    import shlex

    joined = text.replace("\\\n", " ")
    line = next(line for line in joined.splitlines() if line.strip().startswith("memccp --servers="))
    return shlex.split(line)


@pytest.fixture
def public_root():
    """An empty docroot nginx's worker (not root) can read, unlike pytest's tmp_path."""
    import shutil
    import tempfile
    from pathlib import Path

    root = Path(tempfile.mkdtemp(prefix="memccp-docroot-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root)


def test_readme_debian_nginx_block_and_command(installed_memccp, nginx, public_root):
    """README.Debian's server block and memccp command, as written (docroot and server
    address replaced): / and /docs/ as text/html from memcached, gzip'd CSS unpacked by
    gunzip for a client without gzip, a file and a directory added later from disk, and
    everything from disk while memcached is down."""
    text = readme_debian()
    first = start_memcached()
    files = {"/index.html": b"<h1>top</h1>", "/docs/index.html": b"<h1>docs</h1>",
             "/site.css": b"body { color: red }\n" * 300}
    base = public_root
    for path, data in files.items():
        (base / path.lstrip("/")).parent.mkdir(mode=0o755, exist_ok=True)
        (base / path.lstrip("/")).write_bytes(data)
        (base / path.lstrip("/")).chmod(0o644)
    block = readme_server_block(text).replace("/var/www/html", str(base))
    server = nginx(block.replace("127.0.0.1:11211", first.address))
    argv = [installed_memccp if word == "memccp" else word for word in readme_memccp_command(text)]
    argv = [word.replace("127.0.0.1:11211", first.address).replace("/var/www/html", str(base))
            for word in argv]
    try:
        result = run_installed(argv)
        assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
        assert text_get(first, b"/site.css?")[0] == 2  # stored gzip'd, with flag 2
        (base / "late.txt").write_bytes(b"added later")
        (base / "new").mkdir(mode=0o755)
        (base / "new" / "index.html").write_bytes(b"new dir")
        for path in (base / "late.txt", base / "new" / "index.html"):
            path.chmod(0o644)
        for path, data in (("/", files["/index.html"]), ("/docs/", files["/docs/index.html"])):
            status, body, headers = server.get(path)
            assert (status, body, headers["Content-Type"]) == (200, data, "text/html"), path
        status, body, headers = server.get("/site.css")
        assert (status, body, headers.get("Content-Encoding")) == (200, files["/site.css"], None)
        assert server.get("/late.txt")[:2] == (200, b"added later")
        assert server.get("/new/")[:2] == (200, b"new dir")
    finally:
        stop(first)
    assert server.get("/docs/")[:2] == (200, files["/docs/index.html"])  # memcached down: disk
    assert server.get("/site.css")[:2] == (200, files["/site.css"])


def test_preload_unit_command_as_a_user_of_its_own(installed_memccp, memcached, public_root, tmp_path):
    """As the unit runs it (DynamicUser: an unprivileged user, no new privileges), the command
    copies a world-readable docroot; an index file only root can read is named once, exit 1."""
    (public_root / "docs").mkdir(mode=0o755)
    (public_root / "docs" / "index.html").write_bytes(b"<h1>docs</h1>")
    (public_root / "docs" / "index.html").chmod(0o644)
    conf = tmp_path / "www.conf"
    conf.write_text(f"DOCROOT={public_root}\nSERVERS={memcached.address}\nWAIT=10\n"
                    "OPTIONS=\"--escape=nginx --suffix=? --index=index.html\"\n")
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--no-new-privs"]
    result = run_installed(as_nobody + unit_command(UNIT, conf))
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert stored_keys(memcached) == {b"/docs/index.html?", b"/docs/?"}
    assert text_get(memcached, b"/docs/?") == (0, b"<h1>docs</h1>")

    (public_root / "docs" / "index.html").chmod(0o600)  # only root may read it
    text_command(memcached, b"flush_all")
    result = run_installed(as_nobody + unit_command(UNIT, conf))
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == f"memccp: {public_root}/docs/index.html: Permission denied\n"
    assert stored_keys(memcached) == set()
