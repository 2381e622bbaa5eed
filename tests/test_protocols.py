"""--protocol=binary|text|meta|auto against real memcached servers: the same bytes, flags,
expiry and refusals whichever dialect carries them; servers that speak only one dialect."""

import os

import pytest

from conftest import binary_get, dump_items, text_command
from helpers import About, run

PROTOCOLS = ["binary", "text", "meta", "auto"]
PATHS = ["unbuffered", "pipelined"]
INJECTION = b"\r\nset evil 0 0 4\r\nEVIL\r\n"


def buffering(path):
    return ["-B"] if path == "pipelined" else []


@pytest.fixture
def odd_files(tmp_path):
    """Files whose bytes a careless text client would break: NUL bytes, CR LF, a command."""
    contents = {"nul.bin": b"\x00a\x00\x00b\x00", "crlf.txt": b"line\r\nline\r\n\r\n",
                "inject.txt": b"x" + INJECTION + b"y", "only.txt": INJECTION,
                "empty.txt": b"", "end.txt": b"END\r\n"}
    for name, data in contents.items():
        (tmp_path / name).write_bytes(data)
    return {name.encode(): (tmp_path / name) for name in contents}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("flags,expire,ttl", [("0", [], -1), ("4294967295", ["-e", "100"], About(100))],
                         ids=["flags0-never", "flagsmax-e100"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_exact_bytes_flags_expiry(memcached, odd_files, capsys, protocol, flags, expire, ttl, path):
    """Each dialect stores the exact file bytes (NUL, CR LF, a text command inside), the flags
    and the expiry; no other item (no 'evil') appears; exit 0, silent."""
    argv = [*buffering(path), f"--protocol={protocol}", "-s", memcached.address, "-F", flags, *expire]
    assert run(capsys, *argv, *map(str, odd_files.values())) == (0, "", "")
    assert dump_items(memcached) == {key: (int(flags), p.read_bytes(), ttl)
                                     for key, p in odd_files.items()}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_add_and_replace(memcached, tmp_path, capsys, protocol, path):
    """-A stores only new keys and -R changes only existing ones, each refusal named with its
    file and the option; the others stored; exit 1."""
    text_command(memcached, b"set old.txt 5 0 3\r\nold", one_line=True)
    for name in ("old.txt", "new.txt"):
        (tmp_path / name).write_bytes(b"file " + name.encode())
    old, new = str(tmp_path / "old.txt"), str(tmp_path / "new.txt")
    argv = [*buffering(path), f"--protocol={protocol}", "-s", memcached.address]
    assert run(capsys, *argv, "-A", "-v", old, new) == (
        1, "new.txt\n", f"memccp: {old}: key 'old.txt' already exists (--add stores only new keys)\n"
                        "memccp: 2 files, 1 stored (12 bytes), 1 failed\n")
    assert dump_items(memcached) == {b"old.txt": (5, b"old", -1), b"new.txt": (0, b"file new.txt", -1)}
    text_command(memcached, b"delete new.txt", one_line=True)
    assert run(capsys, *argv, "-R", "-F", "3", old, new) == (
        1, "", f"memccp: {new}: key 'new.txt' does not exist (--replace changes only existing keys)\n")
    assert dump_items(memcached) == {b"old.txt": (3, b"file old.txt", -1)}


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_pipelined_many_files(memcached, tmp_path, capsys, protocol):
    """-B -v with 300 files of several sizes: every key listed, the summary, every item exact."""
    paths, expected, size = [], {}, 0
    for i in range(300):
        data = os.urandom(i * 97 % 5000)
        (tmp_path / f"m{i:03}").write_bytes(data)
        paths.append(str(tmp_path / f"m{i:03}"))
        expected[b"m%03d" % i] = (0, data, -1)
        size += len(data)
    code, out, err = run(capsys, "-B", "-v", f"--protocol={protocol}", "-s", memcached.address, *paths)
    assert (code, out) == (0, "".join(f"m{i:03}\n" for i in range(300)))
    assert err == f"memccp: 300 files, 300 stored ({size} bytes), 0 failed\n"
    assert dump_items(memcached) == expected


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_verify_all_present(memcached, odd_files, capsys, protocol, path):
    """--verify -v reads every item back in the dialect: 0 missing or different; exit 0."""
    size = sum(len(p.read_bytes()) for p in odd_files.values())
    assert run(capsys, *buffering(path), "-v", "--verify", f"--protocol={protocol}", "-F", "7",
               "-s", memcached.address, *map(str, odd_files.values())) == (
        0, "".join(k.decode() + "\n" for k in odd_files),
        f"memccp: 6 files, 6 stored ({size} bytes), 0 failed\n"
        "memccp: verified 6 items, 0 missing or different\n")
    assert dump_items(memcached) == {k: (7, p.read_bytes(), -1) for k, p in odd_files.items()}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_too_large_for_the_server(one_mb_memcached, tmp_path, capsys, protocol, path):
    """A 2 MB file on memcached -I 1m fails with the item size message, each such file named;
    the small files around it stored; exit 1."""
    big = os.urandom(2 << 20)
    paths = []
    for name, data in (("a.bin", big), ("small.txt", b"small"), ("b.bin", big[::-1])):
        (tmp_path / name).write_bytes(data)
        paths.append(str(tmp_path / name))
    code, out, err = run(capsys, *buffering(path), "-v", f"--protocol={protocol}",
                         "-s", one_mb_memcached.address, *paths)
    limit = "value is larger than the server's item size limit (memcached -I)"
    assert (code, out) == (1, "small.txt\n")
    assert err == (f"memccp: {paths[0]}: {limit}\nmemccp: {paths[2]}: {limit}\n"
                   "memccp: 3 files, 1 stored (5 bytes), 2 failed\n")
    assert dump_items(one_mb_memcached) == {b"small.txt": (0, b"small", -1)}


@pytest.mark.parametrize("path", PATHS)
def test_auto_speaks_meta_to_a_text_only_server(ascii_memcached, odd_files, capsys, path):
    """auto against memcached -B ascii: one -v line says binary was rejected and meta is
    spoken; every file stored exactly; exit 0."""
    address = ascii_memcached.address
    code, out, err = run(capsys, *buffering(path), "-v", "-F", "42", "-s", address,
                         *map(str, odd_files.values()))
    size = sum(len(p.read_bytes()) for p in odd_files.values())
    assert (code, out) == (0, "".join(k.decode() + "\n" for k in odd_files))
    assert err == (f"memccp: server {address} rejects the binary protocol (it answered 'ERROR'): "
                   f"speaking meta to it\nmemccp: 6 files, 6 stored ({size} bytes), 0 failed\n")
    assert dump_items(ascii_memcached) == {k: (42, p.read_bytes(), -1) for k, p in odd_files.items()}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("option", ["-b", "--protocol=binary"])
def test_binary_pinned_fails_on_a_text_only_server(ascii_memcached, odd_files, capsys, option, path):
    """-b (or --protocol=binary) against memcached -B ascii: each file fails naming the text
    and meta protocols; nothing stored; exit 1."""
    address = ascii_memcached.address
    code, out, err = run(capsys, *buffering(path), option, "-s", address, *map(str, odd_files.values()))
    reason = ("does not speak the binary protocol (it answered 'ERROR'); "
              "--protocol=text or meta speaks to it")
    assert (code, out) == (1, "")
    assert err == "".join(f"memccp: {p}: server {address}: {reason}\n" for p in odd_files.values())
    assert dump_items(ascii_memcached) == {}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("protocol", ["text", "meta"])
def test_text_pinned_fails_on_a_binary_only_server(binary_memcached, tmp_path, capsys, protocol, path):
    """--protocol=text or meta against memcached -B binary: the dialect check on connecting
    fails the file at once, saying so; nothing stored; exit 1."""
    (tmp_path / "t.txt").write_bytes(b"t")
    address = binary_memcached.address
    assert run(capsys, *buffering(path), f"--protocol={protocol}", "--timeout=30", "-s", address,
               str(tmp_path / "t.txt")) == (
        1, "", f"memccp: {tmp_path / 't.txt'}: server {address}: does not speak the {protocol} "
               "protocol (it closed the connection at the first request)\n")
    assert binary_get(binary_memcached, b"t.txt") is None


@pytest.mark.parametrize("path", PATHS)
def test_auto_speaks_binary_to_a_binary_only_server(binary_memcached, odd_files, capsys, path):
    """auto against memcached -B binary: binary, without a note; every file stored exactly."""
    code, out, err = run(capsys, *buffering(path), "-v", "-s", binary_memcached.address,
                         *map(str, odd_files.values()))
    size = sum(len(p.read_bytes()) for p in odd_files.values())
    assert (code, out, err) == (0, "".join(k.decode() + "\n" for k in odd_files),
                                f"memccp: 6 files, 6 stored ({size} bytes), 0 failed\n")
    for key, p in odd_files.items():
        assert binary_get(binary_memcached, key) == (0, p.read_bytes())


SPACE_WARNING = ("warning: key contains space or control bytes (0x20): a text-protocol reader "
                 "such as nginx cannot fetch it (see --escape=nginx)")


@pytest.mark.parametrize("path", PATHS)
def test_key_with_a_space_in_text_fails(memcached, tmp_path, capsys, path):
    """--protocol=text cannot carry a key with a space: that file fails naming --escape=nginx
    and the dialects that carry it; the other file stored; exit 1."""
    (tmp_path / "a b").write_bytes(b"spaced")
    (tmp_path / "ok").write_bytes(b"ok")
    spaced = tmp_path / "a b"
    assert run(capsys, *buffering(path), "--protocol=text", "-s", memcached.address,
               str(spaced), str(tmp_path / "ok")) == (
        1, "", f"memccp: {spaced}: {SPACE_WARNING}\n"
               f"memccp: {spaced}: key 'a b' has a space, which the text protocol cannot carry "
               "(--escape=nginx escapes it; --protocol=binary or meta carries it)\n")
    assert dump_items(memcached) == {b"ok": (0, b"ok", -1)}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("protocol", ["meta", "binary", "auto"])
def test_key_with_a_space_carried_exactly(memcached, tmp_path, capsys, protocol, path):
    """meta (base64), binary and auto store a key with a space under the exact key (read back
    with a binary get), with the nginx warning only; exit 0."""
    (tmp_path / "a b").write_bytes(b"spaced\r\n")
    assert run(capsys, *buffering(path), f"--protocol={protocol}", "-s", memcached.address,
               str(tmp_path / "a b")) == (0, "", f"memccp: {tmp_path / 'a b'}: {SPACE_WARNING}\n")
    assert binary_get(memcached, b"a b") == (0, b"spaced\r\n")
    assert dump_items(memcached) == {b"a b": (0, b"spaced\r\n", -1)}


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_key_with_a_space_escaped(memcached, tmp_path, capsys, protocol):
    """--escape=nginx stores the key escaped (a%20b) in every dialect, silently; exit 0."""
    (tmp_path / "a b").write_bytes(b"spaced")
    assert run(capsys, "--escape=nginx", f"--protocol={protocol}", "-s", memcached.address,
               str(tmp_path / "a b")) == (0, "", "")
    assert dump_items(memcached) == {b"a%20b": (0, b"spaced", -1)}


@pytest.mark.parametrize("protocol", ["text", "meta"])
def test_username_needs_binary(memcached, tmp_path, capsys, protocol):
    """--username with --protocol=text or meta is a usage error (exit 2); nothing stored."""
    (tmp_path / "u").write_bytes(b"u")
    assert run(capsys, f"--protocol={protocol}", "-u", "alice", "-p", "pw", "-s", memcached.address,
               str(tmp_path / "u")) == (
        2, "", f"memccp: SASL (--username) needs the binary protocol, not --protocol={protocol}: "
               "memcached refuses SASL over text\n")
    assert dump_items(memcached) == {}


@pytest.mark.parametrize("protocol", ["text", "meta"])
def test_binary_option_contradicts_other_protocols(memcached, tmp_path, capsys, protocol):
    """-b with --protocol=text or meta is a usage error (exit 2); nothing stored."""
    (tmp_path / "u").write_bytes(b"u")
    assert run(capsys, "-b", f"--protocol={protocol}", "-s", memcached.address, str(tmp_path / "u")) == (
        2, "", f"memccp: -b (--binary) and --protocol={protocol} contradict each other\n")
    assert dump_items(memcached) == {}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_expiry_over_31_bits(memcached, tmp_path, capsys, protocol, path):
    """--expire 3000000000 (a unix time in 2065): binary stores it with that expiry; text and
    meta, which memcached reads as a negative time, fail the file saying so, nothing stored."""
    import time

    page = tmp_path / "far.txt"
    page.write_bytes(b"far")
    code, out, err = run(capsys, *buffering(path), f"--protocol={protocol}", "-e", "3000000000",
                         "-s", memcached.address, str(page))
    if protocol in ("binary", "auto"):
        assert (code, out, err) == (0, "", "")
        # memcached counts from its own clock, which may be a second behind ours
        assert dump_items(memcached) == {b"far.txt": (0, b"far", About(3000000000 - int(time.time()) + 1))}
    else:
        assert (code, out, err) == (1, "", f"memccp: {page}: --expire 3000000000 is over 2147483647, "
                                    f"which memcached reads as a negative time in the {protocol} "
                                    "protocol: the item would expire at once (--protocol=binary "
                                    "stores it)\n")
        assert dump_items(memcached) == {}


@pytest.mark.parametrize("server", ["memcached", "ascii_memcached"])
def test_meta_carries_blank_keys_and_verifies_them(server, tmp_path, capsys, request):
    """meta (pinned, or chosen by auto on memcached -B ascii) stores and --verify reads back
    keys with a space and a tab (base64), exact; exit 0."""
    target = request.getfixturevalue(server)
    (tmp_path / "c d").write_bytes(b"x\r\ny")
    (tmp_path / "e\tf").write_bytes(b"\x00")
    protocol = ["--protocol=meta"] if server == "memcached" else []
    code, out, err = run(capsys, "-v", "--verify", *protocol, "-s", target.address,
                         str(tmp_path / "c d"), str(tmp_path / "e\tf"))
    warning = "warning: key contains space or control bytes (0x{:02x}): a text-protocol reader " \
              "such as nginx cannot fetch it (see --escape=nginx)"
    chosen = "" if protocol else (f"memccp: server {target.address} rejects the binary protocol "
                                  "(it answered 'ERROR'): speaking meta to it\n")
    assert (code, out) == (0, "c d\ne\\x09f\n")
    assert err == (f"memccp: {tmp_path / 'c d'}: {warning.format(0x20)}\n" + chosen
                   + f"memccp: {tmp_path}/e\\x09f: {warning.format(0x09)}\n"
                   "memccp: 2 files, 2 stored (5 bytes), 0 failed\n"
                   "memccp: verified 2 items, 0 missing or different\n")
    assert dump_items(target) == {b"c d": (0, b"x\r\ny", -1), b"e\tf": (0, b"\x00", -1)}
