"""SASL against a real memcached started with -S and a sasldb made here."""


import pytest

from conftest import NO_SERVER, SASL_PASSWORD, text_get
from helpers import run

PASSWORD = SASL_PASSWORD



@pytest.fixture
def page(tmp_path):
    path = tmp_path / "page.html"
    path.write_bytes(b"<p>secret page</p>")
    return path


@pytest.mark.parametrize("how", ["option", "environment", "file"])
def test_password_sources(sasl_memcached, page, capsys, monkeypatch, tmp_path, how):
    """--password, MEMCACHED_PASSWORD and --password-file all authenticate."""
    argv = ["-s", sasl_memcached.address, "-u", "alice", "--key", f"k-{how}", str(page)]
    if how == "option":
        argv += ["-p", PASSWORD]
    elif how == "environment":
        monkeypatch.setenv("MEMCACHED_PASSWORD", PASSWORD)
    else:
        secret = tmp_path / "pw"
        secret.write_text(PASSWORD + "\n")
        secret.chmod(0o600)
        argv += ["--password-file", str(secret)]
    assert run(capsys, *argv) == (0, "", "")
    # a second store with --add proves the first one landed
    code, out, err = run(capsys, *argv, "--add")
    assert (code, out) == (1, "") and "already exists" in err


def test_wrong_password(sasl_memcached, page, capsys):
    """A wrong password is a clear 'authentication failed' error for the file; exit 1."""
    code, out, err = run(capsys, "-s", sasl_memcached.address, "-u", "alice", "-p", "nope", str(page))
    assert (code, out) == (1, "")
    assert err == (f"memccp: {page}: server {sasl_memcached.address}: "
                   "authentication failed (wrong username or password)\n")


def test_credentials_required(sasl_memcached, page, capsys, monkeypatch):
    """Without credentials a SASL server's refusal says so."""
    monkeypatch.delenv("MEMCACHED_PASSWORD", raising=False)
    code, out, err = run(capsys, "-s", sasl_memcached.address, str(page))
    assert (code, out) == (1, "")
    assert err == (f"memccp: {page}: server {sasl_memcached.address}: "
                   "authentication required: give --username and --password\n")


def test_username_without_password(page, capsys, monkeypatch):
    """--username without any password source is a usage error."""
    monkeypatch.delenv("MEMCACHED_PASSWORD", raising=False)
    code, out, err = run(capsys, "-s", NO_SERVER, "-u", "alice", str(page))
    assert (code, out) == (2, "")
    assert "SASL needs both --username and a password" in err


@pytest.mark.parametrize("password", [PASSWORD, "nope"])
def test_password_never_printed(sasl_memcached, page, capsys, password):
    """Not even --debug -v prints the password, whether it is right or wrong."""
    code, out, err = run(capsys, "-d", "-v", "-s", sasl_memcached.address, "-u", "alice",
                         "-p", password, str(page))
    assert code == (0 if password == PASSWORD else 1)
    assert password not in out and password not in err


def test_environment_password_alone_is_ignored(memcached, page, capsys, monkeypatch):
    """MEMCACHED_PASSWORD without --username does not turn SASL on (servers without SASL work)."""
    monkeypatch.setenv("MEMCACHED_PASSWORD", PASSWORD)
    assert run(capsys, "-s", memcached.address, str(page)) == (0, "", "")


def test_password_without_username(memcached, page, capsys):
    """--password without --username is ignored with a warning, as C memccp ignores it."""
    code, out, err = run(capsys, "-s", memcached.address, "-p", "x", str(page))
    assert (code, out) == (0, "")
    assert err == "memccp: warning: a password without --username is ignored (as C memccp ignores it)\n"
    assert text_get(memcached, page.name.encode()) == (0, page.read_bytes())
