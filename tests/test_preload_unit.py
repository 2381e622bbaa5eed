"""debian/memccp-preload@.service: systemd accepts it, it is wired to
memcached.service and sandboxed, and its command line (as systemd expands it with
the shipped example configuration) fills a real memcached."""

import gzip
import os
import shutil
import subprocess
import urllib.parse

import pytest

from conftest import text_command, text_get
from systemd_unit import environment_file, unit_command, unit_settings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UNIT = os.path.join(ROOT, "debian", "memccp-preload@.service")
EXAMPLE = os.path.join(ROOT, "debian", "preload", "example.conf")
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def stored_keys(server) -> set:
    reply = text_command(server, b"lru_crawler metadump all")
    return {urllib.parse.unquote_to_bytes(line.split()[0][4:])
            for line in reply.splitlines() if line.startswith(b"key=")}


def test_systemd_analyze_verify(tmp_path):
    """systemd-analyze verify accepts an instance of the template: no warning, exit 0."""
    analyze = shutil.which("systemd-analyze", path=SYSTEM_PATH)
    assert analyze, "systemd-analyze is missing (apt-get install systemd)"
    shutil.copy(UNIT, tmp_path / "memccp-preload@.service")
    result = subprocess.run([analyze, "verify", str(tmp_path / "memccp-preload@www.service")],
                            capture_output=True, text=True, timeout=300,
                            env={"PATH": SYSTEM_PATH, "SYSTEMD_LOG_COLOR": "0"})
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_unit_wiring_and_sandbox():
    """A oneshot reading /etc/memccp-py/%i.conf, after memcached, restarted with it and
    wanted by it, running sandboxed as a user of its own."""
    settings = unit_settings(UNIT)
    expected = {
        "Service.Type": ["oneshot"],
        "Service.EnvironmentFile": ["/etc/memccp-py/%i.conf"],
        "Unit.ConditionPathExists": ["/etc/memccp-py/%i.conf"],
        "Unit.PartOf": ["memcached.service"],
        "Install.WantedBy": ["memcached.service"],
        "Service.DynamicUser": ["yes"],
        "Service.ProtectSystem": ["strict"],
        "Service.NoNewPrivileges": ["yes"],
        "Service.PrivateTmp": ["yes"],
        "Service.CapabilityBoundingSet": [""],
    }
    assert {key: settings.get(key) for key in expected} == expected
    assert "memcached.service" in settings["Unit.After"][0].split()
    assert "Service.RemainAfterExit" not in settings  # inactive after a run: the next start runs it again
    assert "--wait=${WAIT}" in settings["Service.ExecStart"][0].split()


def test_example_configuration_sets_every_variable():
    """The shipped example sets DOCROOT, SERVERS, WAIT and OPTIONS."""
    assert sorted(environment_file(EXAMPLE)) == ["DOCROOT", "OPTIONS", "SERVERS", "WAIT"]


def test_unit_command_line_fills_memcached(memcached, tmp_path):
    """The unit's ExecStart with the example configuration (DOCROOT with a space, SERVERS
    pointed at a test memcached) stores the docroot under nginx's "$uri?$args" keys,
    index files under their directories, gzip'd text with flag 2; no output, exit 0."""
    docroot = tmp_path / "web root"
    files = {"index.html": b"<h1>top</h1>", "docs/index.html": b"<h1>docs</h1>",
             "my docs/a.css": b"a { color: red }\n" * 200, "img/logo.gif": os.urandom(2000)}
    for name, data in files.items():
        (docroot / name).parent.mkdir(parents=True, exist_ok=True)
        (docroot / name).write_bytes(data)
    conf = tmp_path / "www.conf"
    with open(EXAMPLE, encoding="utf-8") as example:
        lines = example.read().splitlines()
    lines = [f"DOCROOT={docroot}" if line.startswith("DOCROOT=") else
             f"SERVERS={memcached.address}" if line.startswith("SERVERS=") else line
             for line in lines]
    conf.write_text("\n".join(lines) + "\n")
    argv = unit_command(UNIT, conf)
    assert argv[0] == "/usr/bin/memccp"
    assert argv[1:5] == ["--wait=60", f"--servers={memcached.address}", f"--docroot={docroot}",
                         "--recursive"]
    assert argv[-1] == str(docroot)
    result = subprocess.run(["/usr/bin/python3", "-m", "memccp_py", *argv[1:]],
                            env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, timeout=300)
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")
    assert stored_keys(memcached) == {b"/index.html?", b"/?", b"/docs/index.html?", b"/docs/?",
                                      b"/my%20docs/a.css?", b"/img/logo.gif?"}
    assert text_get(memcached, b"/?") == (0, b"<h1>top</h1>")
    assert text_get(memcached, b"/docs/?") == (0, b"<h1>docs</h1>")
    assert text_get(memcached, b"/img/logo.gif?") == (0, files["img/logo.gif"])
    flags, packed = text_get(memcached, b"/my%20docs/a.css?")
    assert (flags, gzip.decompress(packed)) == (2, files["my docs/a.css"])


@pytest.mark.parametrize("line, env, argv", [
    ("/bin/x --a=${A} $B ${C}", {"A": "1 2", "B": "-x  -y", "C": "/w r"},
     ["/bin/x", "--a=1 2", "-x", "-y", "/w r"]),
    ("/bin/x $EMPTY ${EMPTY}", {"EMPTY": ""}, ["/bin/x", ""]),
])
def test_expand_command(line, env, argv):
    """The test's expansion follows systemd: ${A} stays one word, a lone $B splits."""
    from systemd_unit import expand_command

    assert expand_command(line, env) == argv
