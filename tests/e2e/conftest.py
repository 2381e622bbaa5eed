"""Fixtures for end-to-end tests: the installed /usr/bin/memccp and private nginx servers.

Run after installing the .deb (``make e2e``). memcached servers come from
tests/conftest.py (``memcached``, ``memcached_cluster``). The ``nginx`` fixture
is a factory, so a test chooses the ``location`` blocks and ``upstream``
blocks it needs, for example::

    def test_gzip(nginx, memcached):
        server = nginx(memcached_location(memcached.address, "memcached_gzip_flag 2;"))

    def test_three_servers(nginx, memcached_cluster):
        upstream = upstream_block("mc", [s.address for s in memcached_cluster],
                                  "hash $memcached_key consistent;")
        server = nginx(memcached_location("mc"), upstreams=upstream)
"""

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Iterator, List, NamedTuple, Sequence, Tuple

import pytest

from conftest import free_port

MEMCCP = "/usr/bin/memccp"
NGINX = "/usr/sbin/nginx"
DASH = "/bin/dash"

# The copy loop of the original deployment script, unchanged but for sudo.
SEED_LOOP = ("for file in $(find $BASE -type f -name '*.gif' | sed \"s#$BASE##\"); "
             "do memccp --key=$file --servers=127.0.0.1:$PORT $BASE$file; done")

# Environment for running installed programs: Debian's own PATH and interpreter.
SYSTEM_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8"}

# urllib without proxies from the environment: nginx listens on 127.0.0.1 only.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def run_installed(argv: Sequence[str], env: dict = None, **kwargs) -> subprocess.CompletedProcess:
    """Run an installed program with the system PATH; capture text stdout and stderr."""
    return subprocess.run(list(argv), env={**SYSTEM_ENV, **(env or {})}, capture_output=True,
                          text=True, timeout=60, check=False, **kwargs)


def memccp_version() -> str:
    """``memccp --version`` of /usr/bin/memccp, or "" when it is missing or fails."""
    if not os.access(MEMCCP, os.X_OK):
        return ""
    try:
        result = run_installed([MEMCCP, "--version"])
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return result.stdout if result.returncode == 0 else ""


#: MEMCCP_E2E=installed (make e2e, the package's autopkgtest): test /usr/bin/memccp, and fail
#: when it is not memccp-py or not this checkout's build. Otherwise the checkout is tested.
WANT_INSTALLED = os.environ.get("MEMCCP_E2E") == "installed"
CHECKOUT = Path(__file__).resolve().parents[2]


def _installed_module_dir() -> Path:
    """Where the system's python3 imports memccp_py from (never this checkout)."""
    result = run_installed(["/usr/bin/python3", "-I", "-c",
                            "import memccp_py, os; print(os.path.dirname(memccp_py.__file__))"],
                           cwd="/")
    if result.returncode != 0:
        pytest.fail(f"memccp_py is not installed for /usr/bin/python3: {result.stderr.strip()}")
    return Path(result.stdout.strip())


def _checked_installed() -> str:
    """/usr/bin/memccp, after checking it is memccp-py built from this very checkout."""
    version = memccp_version()
    if "memccp-py" not in version:
        pytest.fail(f"MEMCCP_E2E=installed, but {MEMCCP} is not memccp-py's "
                    f"({version.strip() or 'missing'}): make install")
    source = CHECKOUT / "memccp_py"
    if source.is_dir():  # an autopkgtest copies the tests alone: nothing to compare with
        installed = _installed_module_dir()
        stale = sorted(p.name for p in source.glob("*.py")
                       if not (installed / p.name).is_file()
                       or (installed / p.name).read_bytes() != p.read_bytes())
        if stale:
            pytest.fail(f"the installed memccp-py is not this checkout's build ({installed}: "
                        f"{', '.join(stale)} differ): make install")
    return MEMCCP


@pytest.fixture(scope="session")
def memccp_program(tmp_path_factory) -> str:
    """The memccp under test: the installed one (MEMCCP_E2E=installed, checked), else a
    launcher of this checkout, so the suite runs before any package is built."""
    if WANT_INSTALLED:
        return _checked_installed()
    launcher = tmp_path_factory.mktemp("checkout-bin") / "memccp"
    launcher.write_text(f"#!/bin/sh\nPYTHONPATH='{CHECKOUT}' exec /usr/bin/python3 -m memccp_py \"$@\"\n")
    launcher.chmod(0o755)
    return str(launcher)


@pytest.fixture(scope="session")
def installed_memccp() -> str:
    """/usr/bin/memccp of the installed package, for what only the package has (its unit,
    completion, man page): with MEMCCP_E2E=installed checked, else skipped with the reason."""
    if not WANT_INSTALLED:
        pytest.skip("tests what the package installs: run with MEMCCP_E2E=installed (make e2e)")
    return _checked_installed()


def memcached_location(memcached_pass: str, extra: str = "", path: str = "/",
                       key: str = "$uri") -> str:
    """A ``location`` serving items keyed by *key* (the URI, as in the deployment), and the
    ``@fallback`` it hands misses to (404). *extra* goes inside the location block."""
    return (f"location {path} {{\n"
            f"    set $memcached_key \"{key}\";\n"
            f"    memcached_pass {memcached_pass};\n"
            f"    error_page 404 = @fallback;\n"
            f"    {extra}\n"
            f"}}\n"
            f"location @fallback {{\n"
            f"    return 404;\n"
            f"}}\n")


def upstream_block(name: str, servers: Sequence[str], directives: str = "") -> str:
    """An ``upstream NAME { DIRECTIVES server ...; }`` block for *servers* (host:port)."""
    lines = [f"upstream {name} {{", f"    {directives}"]
    lines += [f"    server {server};" for server in servers]
    return "\n".join(lines + ["}"]) + "\n"


class Nginx(NamedTuple):
    port: int
    prefix: Path
    error_log: Path
    process: subprocess.Popen

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path: str) -> Tuple[int, bytes, dict]:
        """GET *path*: (status, body, headers), for error statuses too."""
        try:
            with _OPENER.open(self.url(path), timeout=10) as response:
                return response.status, response.read(), dict(response.headers)
        except urllib.error.HTTPError as error:
            with error:
                return error.code, error.read(), dict(error.headers)


NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;

events {{
    worker_connections 64;
}}

http {{
    default_type application/octet-stream;
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/client_body_temp;
    proxy_temp_path {prefix}/proxy_temp;
    fastcgi_temp_path {prefix}/fastcgi_temp;
    uwsgi_temp_path {prefix}/uwsgi_temp;
    scgi_temp_path {prefix}/scgi_temp;

{upstreams}
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
{locations}
    }}
}}
"""


def _indent(text: str, spaces: int) -> str:
    return "".join(" " * spaces + line if line.strip() else line
                   for line in text.splitlines(keepends=True))


def _wait_until_answers(server: Nginx, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"nginx exited with {server.process.returncode}:\n"
                               + server.error_log.read_text(errors="replace"))
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nginx on 127.0.0.1:{server.port} did not answer:\n"
                       + server.error_log.read_text(errors="replace"))


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[Callable[..., Nginx]]:
    """Factory: ``nginx(locations, upstreams="")`` starts a private nginx on a free
    127.0.0.1 port, every file of it under tmp_path, and returns an ``Nginx``.
    All servers started are stopped after the test."""
    if not os.access(NGINX, os.X_OK):
        pytest.skip(f"{NGINX} is missing (apt-get install nginx-light)")
    started: List[Nginx] = []

    def start(locations: str, upstreams: str = "") -> Nginx:
        prefix = tmp_path / f"nginx{len(started)}"
        prefix.mkdir()
        port = free_port()
        conf = prefix / "nginx.conf"
        conf.write_text(NGINX_CONF.format(prefix=prefix, port=port,
                                          upstreams=_indent(upstreams, 4),
                                          locations=_indent(locations, 8)))
        error_log = prefix / "error.log"
        process = subprocess.Popen([NGINX, "-c", str(conf), "-p", f"{prefix}/", "-e", str(error_log)],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, env=SYSTEM_ENV)
        server = Nginx(port, prefix, error_log, process)
        started.append(server)
        _wait_until_answers(server)
        return server

    yield start
    for server in started:
        if server.process.poll() is None:
            server.process.send_signal(signal.SIGQUIT)  # graceful shutdown
            try:
                server.process.wait(10)
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait()


@pytest.fixture
def web_root(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``web_root({"/img/a.gif": b"..."})`` writes the files under a new
    directory (a web server's document root) and returns it."""
    counter = [0]

    def make(files: dict) -> Path:
        counter[0] += 1
        base = tmp_path / f"www{counter[0]}"
        for path, content in files.items():
            target = base / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        base.mkdir(exist_ok=True)
        return base

    return make


def have(program: str) -> bool:
    """Whether *program* is on the system PATH."""
    return shutil.which(program, path=SYSTEM_ENV["PATH"]) is not None
