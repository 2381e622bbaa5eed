"""twemproxy (Debian's nutcracker) in front of memcached servers, for the tests: it speaks
only the text protocol, closes the connection at a binary request and at ``stats``."""

import shutil
import subprocess
from pathlib import Path
from typing import List, NamedTuple

from conftest import Memcached, free_port, stop, wait_until_answers

NUTCRACKER = shutil.which("nutcracker") or "/usr/sbin/nutcracker"


class Twemproxy(NamedTuple):
    host: str
    port: int
    process: subprocess.Popen
    backends: List[Memcached]

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def start_twemproxy(backends: List[Memcached], workdir: Path) -> Twemproxy:
    """nutcracker on a free loopback port in front of *backends* (ketama, no ejection:
    a key stays on its backend whether it is up or down); return once it answers ``version``."""
    port, stats_port = free_port(), free_port()
    config = workdir / "nutcracker.yml"
    config.write_text(
        "pool:\n"
        f"  listen: 127.0.0.1:{port}\n"
        "  hash: fnv1a_64\n"
        "  distribution: ketama\n"
        "  timeout: 5000\n"
        "  auto_eject_hosts: false\n"
        "  servers:\n"
        + "".join(f"   - {b.host}:{b.port}:1 b{i}\n" for i, b in enumerate(backends)))
    process = subprocess.Popen([NUTCRACKER, "-c", str(config), "-s", str(stats_port),
                                "-a", "127.0.0.1", "-o", str(workdir / "nutcracker.log")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_answers("127.0.0.1", port, process, text=True)
    except Exception:
        process.kill()
        raise
    return Twemproxy("127.0.0.1", port, process, backends)


def stop_twemproxy(proxy: Twemproxy) -> None:
    """End nutcracker and the backends still running."""
    proxy.process.kill()
    proxy.process.wait(5)
    for backend in proxy.backends:
        if backend.process.poll() is None:
            stop(backend)
