"""Placement over several servers: the server libmemcached (C memccp/memccat)
or nginx would ask, proven on vectors, the installed libmemcached and real servers."""

import ctypes
import ctypes.util
import random
import shutil
import subprocess

import pytest

from conftest import text_command, text_get
from helpers import c_memccp, run
from memccp_py.choices import HASH_NAMES
from memccp_py.placement.distributions import make_placement
from memccp_py.placement.servers import parse_servers

KEYS = [b"foo", b"a", b"/images/a.gif", b"hello world", b"key1", b"key2", b"key3"]
THREE = "127.0.0.1:11211,127.0.0.1:11212,127.0.0.1:11213"
WEIGHTED = "10.0.0.1:11211,10.0.0.2:11211:2,10.0.0.3:11211"
# (servers, distribution, hash) -> server index of each of KEYS, from libmemcached 1.1.4 and nginx 1.22
VECTORS = [
    (THREE, "modula", "default", [0, 0, 2, 1, 2, 2, 2]),
    (THREE, "modula", "md5", [1, 0, 2, 0, 0, 2, 2]),
    (THREE, "modula", "crc", [1, 2, 1, 0, 1, 0, 1]),
    (THREE, "ketama", "default", [2, 1, 1, 1, 0, 0, 2]),
    (THREE, "ketama-weighted", "default", [0, 1, 2, 0, 1, 2, 0]),
    (WEIGHTED, "modula", "default", [0, 0, 2, 1, 2, 2, 2]),
    (WEIGHTED, "ketama", "default", [2, 2, 1, 1, 0, 1, 1]),
    (WEIGHTED, "ketama-weighted", "default", [1, 1, 1, 0, 0, 1, 2]),
    (THREE, "nginx-consistent", "default", [2, 1, 1, 0, 0, 1, 1]),
    (THREE, "nginx-hash", "default", [1, 2, 1, 0, 1, 0, 1]),
    (WEIGHTED, "nginx-consistent", "default", [1, 1, 2, 0, 2, 1, 0]),
    (WEIGHTED, "nginx-hash", "default", [2, 2, 1, 1, 0, 1, 1]),
]


@pytest.mark.parametrize("servers, distribution, hash_name, expected", VECTORS)
def test_vectors(servers, distribution, hash_name, expected):
    """Known keys land where libmemcached 1.1.4 / nginx 1.22 put them."""
    place = make_placement(distribution, hash_name, parse_servers(servers))
    assert [place(k)[0] for k in KEYS] == expected


def test_all_and_single():
    """--distribution=all names every server; a single server always holds everything."""
    assert make_placement("all", "default", parse_servers(THREE))(b"x") == [0, 1, 2]
    assert make_placement("ketama", "md5", parse_servers("a"))(b"x") == [0]


def _libmemcached():
    path = ctypes.util.find_library("memcached")
    if not path:
        pytest.skip("libmemcached is not installed")
    lib = ctypes.CDLL(path)
    lib.memcached_create.restype = ctypes.c_void_p
    lib.memcached_create.argtypes = [ctypes.c_void_p]
    lib.memcached_servers_parse.restype = ctypes.c_void_p
    lib.memcached_servers_parse.argtypes = [ctypes.c_char_p]
    lib.memcached_server_push.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.memcached_server_list_free.argtypes = [ctypes.c_void_p]
    lib.memcached_behavior_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint64]
    lib.memcached_generate_hash.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    lib.memcached_generate_hash.restype = ctypes.c_uint32
    lib.memcached_free.argtypes = [ctypes.c_void_p]
    return lib


# libmemcached behaviour and distribution numbers (libmemcached-1.0/types)
_HASH, _DISTRIBUTION, _KETAMA_WEIGHTED, _KETAMA = 2, 9, 16, 2
_HASH_NUMBER = {"default": 0, "md5": 1, "crc": 2, "fnv1_64": 3, "fnv1a_64": 4, "fnv1_32": 5,
                "fnv1a_32": 6, "murmur": 8, "jenkins": 9, "murmur3": 10}


@pytest.mark.parametrize("servers", [THREE, WEIGHTED, "b:1,a:2,c:3,d:4,e:5", "[::1]:5,/tmp/s,h"])
@pytest.mark.parametrize("distribution", ["modula", "ketama", "ketama-weighted"])
def test_against_installed_libmemcached(servers, distribution):
    """For every hash and 300 random keys, the server index equals libmemcached's own choice."""
    lib = _libmemcached()
    rnd = random.Random(servers + distribution)
    keys = [bytes(rnd.randrange(33, 256) for _ in range(rnd.randrange(1, 40))) for _ in range(300)]
    for name, number in _HASH_NUMBER.items():
        memc = lib.memcached_create(None)
        if distribution == "ketama-weighted":
            lib.memcached_behavior_set(memc, _KETAMA_WEIGHTED, 1)
        else:
            lib.memcached_behavior_set(memc, _HASH, number)
            if distribution == "ketama":
                lib.memcached_behavior_set(memc, _DISTRIBUTION, _KETAMA)
        parsed = lib.memcached_servers_parse(servers.encode())
        lib.memcached_server_push(memc, parsed)
        lib.memcached_server_list_free(parsed)
        place = make_placement(distribution, name, parse_servers(servers))
        try:
            for key in keys:
                assert place(key) == [lib.memcached_generate_hash(memc, key, len(key))], (name, key)
        finally:
            lib.memcached_free(memc)


@pytest.mark.skipif(not shutil.which("memccat"), reason="Debian's memccat is not installed")
@pytest.mark.parametrize("hash_name", [n for n in HASH_NAMES if n != "hsieh"])  # hsieh: not in Debian's build
def test_c_memccat_finds_every_key(memcached_cluster, tmp_path, capsys, hash_name):
    """With the same --servers and --hash, C memccat (which asks one server) finds all 200 files."""
    servers = ",".join(s.address for s in memcached_cluster)
    paths = []
    for i in range(200):
        path = tmp_path / f"file-{i}.txt"
        path.write_bytes(b"content %d" % i)
        paths.append(str(path))
    assert run(capsys, "-s", servers, f"--hash={hash_name}", *paths) == (0, "", "")
    counts = [0, 0, 0]
    for i in range(200):
        out = tmp_path / "back"
        subprocess.run(["memccat", "-s", servers, f"--hash={hash_name}", f"--file={out}", f"file-{i}.txt"],
                       check=True, capture_output=True)
        assert out.read_bytes() == b"content %d" % i
        counts = [c + (text_get(s, b"file-%d.txt" % i) is not None) for c, s in zip(counts, memcached_cluster)]
    assert sum(counts) == 200 and min(counts) > 30  # each key on exactly one server, spread out


@pytest.mark.skipif(not c_memccp(), reason="Debian's C memccp (libmemcached-tools) is not installed")
def test_c_memccp_places_where_we_predict(memcached_cluster, tmp_path):
    """Keys stored by Debian's C memccp are on the server our modula placement names."""
    servers = ",".join(s.address for s in memcached_cluster)
    paths = []
    for i in range(100):
        path = tmp_path / f"c-{i}.gif"
        path.write_bytes(b"%d" % i)
        paths.append(str(path))
    subprocess.run([c_memccp(), "-s", servers, *paths], check=True, capture_output=True)
    place = make_placement("modula", "default", parse_servers(servers))
    for i in range(100):
        key = b"c-%d.gif" % i
        assert text_get(memcached_cluster[place(key)[0]], key) == (0, b"%d" % i)


def test_one_server_down(memcached_cluster, tmp_path, capsys):
    """With one server down, the other servers' files are stored; each failed file is named."""
    dead = memcached_cluster[1]
    dead.process.kill()
    dead.process.wait()
    servers = ",".join(s.address for s in memcached_cluster)
    place = make_placement("modula", "default", parse_servers(servers))
    paths = []
    for i in range(60):
        path = tmp_path / f"k{i}"
        path.write_bytes(b"v%d" % i)
        paths.append(path)
    for extra in ([], ["-B"]):
        for server in memcached_cluster[::2]:
            text_command(server, b"flush_all")
        code, out, err = run(capsys, *extra, "-s", servers, *map(str, paths))
        expected_failures = [p for p in paths if place(p.name.encode()) == [1]]
        assert (code, out) == (1, "")
        assert err.splitlines() == [f"memccp: {p}: server {dead.address}: connection refused"
                                    for p in expected_failures]
        assert expected_failures and len(expected_failures) < len(paths)
        for p in paths:
            if p not in expected_failures:
                assert text_get(memcached_cluster[place(p.name.encode())[0]], p.name.encode()) == \
                    (0, p.read_bytes())


def test_distribution_all(memcached_cluster, tmp_path, capsys):
    """--distribution=all stores every file on every server (for round-robin upstreams)."""
    path = tmp_path / "everywhere.css"
    path.write_bytes(b"a{}")
    servers = ",".join(s.address for s in memcached_cluster)
    for extra in ([], ["-B"]):
        for server in memcached_cluster:
            text_command(server, b"flush_all")
        assert run(capsys, *extra, "--distribution=all", "-s", servers, str(path)) == (0, "", "")
        assert all(text_get(s, b"everywhere.css") == (0, b"a{}") for s in memcached_cluster)
