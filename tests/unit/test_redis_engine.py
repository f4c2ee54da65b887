"""The Redis engine against a real redis-server: every Txn/Engine method, conflicts, bad input."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator

import pytest
import redis

from pyjuicefs.errors import FsError, TransientMetaError, UserError
from pyjuicefs.meta import codec, new_engine
from pyjuicefs.meta.redis import RedisEngine
from pyjuicefs.meta.redis_url import parse_redis_url
from pyjuicefs.meta.types import TYPE_DIRECTORY, TYPE_FILE, Attr, Slice

pytestmark = pytest.mark.services


@pytest.fixture
def url(new_meta_url) -> str:
    return new_meta_url("redis")


@pytest.fixture
def eng(url) -> Iterator[RedisEngine]:
    e = new_engine(url)
    assert isinstance(e, RedisEngine)
    yield e
    e.close()


@pytest.fixture
def raw(url) -> Iterator[redis.Redis]:
    a = parse_redis_url(url)
    r = redis.Redis(host=a.host, port=a.port, db=a.db)
    yield r
    r.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def auth_redis() -> Iterator[int]:
    """A second redis-server that requires a password ('s3cret') and has an ACL user 'bob'."""
    exe = shutil.which("redis-server")
    assert exe, "redis-server is not installed"
    port = _free_port()
    d = tempfile.mkdtemp(prefix="pyjfs-auth-redis-")
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", d, "--requirepass", "s3cret", "--databases", "4"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                r = redis.Redis(port=port, password="s3cret")
                r.ping()
                r.acl_setuser("bob", enabled=True, passwords=["+bobpw"], keys=["*"], commands=["+@all"])
                r.close()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(d, ignore_errors=True)


def _dir(**kw) -> Attr:
    base = dict(typ=TYPE_DIRECTORY, mode=0o755, nlink=2, length=4096, parent=1)
    return Attr(**{**base, **kw})


# --- transactions: nodes, entries, parents, symlinks, xattrs ---------------------------------------


def test_attr_and_entries_round_trip(eng: RedisEngine, raw: redis.Redis) -> None:
    root = _dir(atime=100, mtime=200, ctime=300, mtimensec=5)
    f = Attr(typ=TYPE_FILE, mode=0o644, uid=1000, gid=1000, nlink=1, length=12, parent=1)

    def write(tx):
        assert tx.get_attr(1) is None
        assert tx.get_entry(1, b"f") is None
        assert tx.list_entries(1) == []
        assert not tx.has_entries(1)
        tx.set_attr(1, root)
        tx.set_attr(2, f)
        tx.set_entry(1, b"f", TYPE_FILE, 2)
        tx.set_entry(1, b"\xffbin", TYPE_DIRECTORY, 3)

    eng.txn(write)
    assert raw.get("i1") == codec.encode_attr(root)
    assert raw.hget("d1", "f") == codec.encode_entry(TYPE_FILE, 2)

    def read(tx):
        return (tx.get_attr(1), tx.get_attrs([2, 9, 1]), tx.get_entry(1, b"f"),
                tx.list_entries(1), tx.has_entries(1))

    a1, batch, ent, ents, has = eng.txn(read, readonly=True)
    assert a1 == root
    assert batch == [f, None, root]
    assert ent == (TYPE_FILE, 2)
    assert ents == [(b"f", TYPE_FILE, 2), (b"\xffbin", TYPE_DIRECTORY, 3)]
    assert has

    def delete(tx):
        tx.delete_entry(1, b"f")
        tx.delete_entry(1, b"\xffbin")
        tx.delete_attr(2)

    eng.txn(delete)
    assert eng.txn(lambda tx: (tx.get_attr(2), tx.has_entries(1), tx.get_attrs([]))) == (None, False, [])
    assert not raw.exists("d1", "i2")


def test_parents_symlink_xattrs(eng: RedisEngine, raw: redis.Redis) -> None:
    def write(tx):
        tx.incr_parent(5, 1, 1)
        tx.incr_parent(5, 1, 1)
        tx.incr_parent(5, 7, 1)
        tx.set_symlink(6, b"../target")
        tx.set_xattr(5, b"user.a", b"1")
        tx.set_xattr(5, b"user.b", b"\x00\x01")

    eng.txn(write)
    assert raw.hgetall("p5") == {b"1": b"2", b"7": b"1"}
    assert raw.get("s6") == b"../target"
    assert eng.txn(lambda tx: tx.get_parents(5)) == {1: 2, 7: 1}
    assert eng.txn(lambda tx: tx.get_symlink(6)) == b"../target"
    assert eng.txn(lambda tx: tx.get_xattr(5, b"user.b")) == b"\x00\x01"
    assert eng.txn(lambda tx: tx.list_xattrs(5)) == {b"user.a": b"1", b"user.b": b"\x00\x01"}

    eng.txn(lambda tx: (tx.incr_parent(5, 7, -1), tx.delete_xattr(5, b"user.a")))
    assert raw.hgetall("p5") == {b"1": b"2"}  # a count reaching 0 is removed
    assert eng.txn(lambda tx: (tx.get_parents(5), tx.get_xattr(5, b"user.a"))) == ({1: 2}, None)
    raw.hset("p5", "9", "0")  # JuiceFS leaves zero counts behind: they are not links
    assert eng.txn(lambda tx: tx.get_parents(5)) == {1: 2}

    eng.txn(lambda tx: (tx.delete_parents(5), tx.delete_symlink(6), tx.delete_xattrs(5)))
    assert not raw.exists("p5", "s6", "x5")
    assert eng.txn(lambda tx: (tx.get_symlink(6), tx.list_xattrs(5), tx.get_parents(5))) == (None, {}, {})


# --- chunks and slice references -----------------------------------------------------------------


def test_chunks_and_slice_refs(eng: RedisEngine, raw: redis.Redis) -> None:
    s1, s2, s3 = Slice(0, 11, 4096, 0, 4096), Slice(4096, 12, 100, 0, 100), Slice(0, 0, 0, 0, 500)

    def write(tx):
        tx.append_slice(3, 0, s1)
        tx.append_slice(3, 0, s2)
        tx.append_slice(3, 2, s3)

    eng.txn(write)
    assert raw.lrange("c3_0", 0, -1) == [codec.encode_slice(s1), codec.encode_slice(s2)]
    assert eng.txn(lambda tx: tx.get_chunk(3, 0)) == [s1, s2]
    assert eng.txn(lambda tx: tx.get_chunk(3, 1)) == []
    raw.set("c33_0", b"x")  # another inode whose number starts with the same digits
    assert eng.txn(lambda tx: tx.chunk_indexes(3)) == [0, 2]
    assert eng.txn(lambda tx: tx.chunk_indexes(3, upto=2)) == [0]
    assert eng.txn(lambda tx: tx.chunk_indexes(3, upto=3000)) == [0, 2]

    eng.txn(lambda tx: tx.set_chunk(3, 0, [s2]))
    assert eng.txn(lambda tx: tx.get_chunk(3, 0)) == [s2]
    eng.txn(lambda tx: tx.set_chunk(3, 2, []))
    assert not raw.exists("c3_2")

    # slice 12 gains a reference (clone): deleting this chunk leaves it referenced once
    eng.txn(lambda tx: tx.incr_slice_ref(12, 100, 1))
    assert raw.hget("sliceRef", "k12_100") == b"1"
    eng.txn(lambda tx: tx.append_slice(3, 1, s1))
    assert eng.delete_chunk(3, 0) == []
    assert raw.hget("sliceRef", "k12_100") == b"0"
    assert not raw.exists("c3_0")
    # no sliceRef field means exactly one reference: the slice is freed
    assert eng.delete_chunk(3, 1) == [(11, 4096)]
    assert raw.hget("sliceRef", "k11_4096") == b"-1"
    assert eng.delete_chunk(3, 1) == []  # already gone


def test_corrupt_chunk_is_an_error(eng: RedisEngine, raw: redis.Redis) -> None:
    raw.rpush("c4_0", b"short")
    with pytest.raises(Exception, match="corrupt slice"):
        eng.txn(lambda tx: tx.get_chunk(4, 0))


# --- counters, delfiles, sustained, locks inside txns ------------------------------------------------


def test_counters(eng: RedisEngine, raw: redis.Redis) -> None:
    assert eng.get_counter("usedSpace") == 0
    eng.txn(lambda tx: (tx.incr_counter("usedSpace", 4096), tx.incr_counter("totalInodes", 1)))
    assert raw.get("usedSpace") == b"4096" and raw.get("totalInodes") == b"1"
    assert eng.get_counter("usedSpace") == 4096
    # Redis stores the last id handed out under lowercase keys; the engine reports the next free id
    assert eng.get_counter("nextInode") == 1
    assert eng.incr_counter("nextInode", 100) == 101
    assert raw.get("nextinode") == b"100"
    assert eng.get_counter("nextInode") == 101
    assert eng.incr_counter("nextChunk", 1) == 2 and raw.get("nextchunk") == b"1"
    assert eng.incr_counter("nextSession", 1) == 1 and raw.get("nextsession") == b"1"
    assert eng.incr_counter("nextTrash", 1) == 1 and raw.get("nextTrash") == b"1"

    assert eng.set_counter_if_small("lastCleanupFiles", 1000, 60)
    assert raw.get("lastCleanupFiles") == b"1000"
    assert not eng.set_counter_if_small("lastCleanupFiles", 1030, 60)  # 1000 > 1030-60
    assert eng.set_counter_if_small("lastCleanupFiles", 1060, 60)
    assert eng.get_counter("lastCleanupFiles") == 1060


def test_delfiles_and_sustained(eng: RedisEngine, raw: redis.Redis) -> None:
    eng.txn(lambda tx: (tx.add_delfile(8, 12345, 1700000000), tx.add_delfile(9, 0, 1700000001),
                        tx.add_sustained(3, 10), tx.add_sustained(3, 11)))
    assert raw.zrange("delfiles", 0, -1, withscores=True) == [(b"8:12345", 1700000000.0), (b"9:0", 1700000001.0)]
    raw.zadd("delfiles", {"legacy": 1})  # malformed members are skipped
    assert [(d.inode, d.length, d.expire) for d in eng.list_delfiles()] == [(8, 12345, 1700000000), (9, 0, 1700000001)]
    eng.delete_delfile(8)
    assert [d.inode for d in eng.list_delfiles()] == [9]

    assert raw.smembers("session3") == {b"10", b"11"}
    assert eng.get_sustained(3) == [10, 11]
    eng.txn(lambda tx: tx.delete_sustained(3, 10))
    assert eng.get_sustained(3) == [11]


def test_locks(eng: RedisEngine, raw: redis.Redis) -> None:
    owner = 0x5FA507D3CA118123
    rec = codec.encode_plock_records([(1, 42, 0, 9)])

    def lock(tx):
        assert tx.get_flocks(7) == {} and tx.get_plocks(7) == {}
        tx.set_flock(7, 1, owner, "R")
        tx.set_flock(7, 2, 1, "R")
        tx.set_plock(7, 1, owner, rec)

    eng.txn(lock)
    assert raw.hgetall("lockf7") == {b"1_5FA507D3CA118123": b"R", b"2_0000000000000001": b"R"}
    assert raw.hgetall("lockp7") == {b"1_5FA507D3CA118123": rec}
    assert raw.smembers("locked1") == {b"lockf7", b"lockp7"}
    assert eng.txn(lambda tx: tx.get_flocks(7)) == {(1, owner): "R", (2, 1): "R"}
    assert eng.txn(lambda tx: tx.get_plocks(7)) == {(1, owner): rec}
    assert eng.list_session_locks(1) == ([7], [7])

    eng.txn(lambda tx: tx.delete_flock(7, 1, owner))
    assert raw.hgetall("lockf7") == {b"2_0000000000000001": b"R"}
    assert raw.smembers("locked1") == {b"lockp7"}
    eng.txn(lambda tx: tx.set_plock(7, 1, owner, b""))
    assert not raw.exists("lockp7", "locked1")

    # a second owner of the same session keeps the locked<sid> entry alive
    eng.txn(lambda tx: (tx.set_flock(8, 1, 1, "W"), tx.set_flock(8, 1, 2, "W")))
    eng.txn(lambda tx: tx.delete_flock(8, 1, 1))
    assert raw.smembers("locked1") == {b"lockf8"}


# --- engine-level: settings, sessions, dir stats, reset -----------------------------------------------


def test_setting_and_reset(eng: RedisEngine, raw: redis.Redis) -> None:
    assert eng.load_setting() is None
    eng.save_setting(b'{\n"Name": "vol"\n}')
    assert raw.get("setting") == b'{\n"Name": "vol"\n}'
    assert eng.load_setting() == b'{\n"Name": "vol"\n}'
    eng.init_schema()  # nothing to create for Redis
    eng.reset()
    assert eng.load_setting() is None and raw.dbsize() == 0


def test_sessions(eng: RedisEngine, raw: redis.Redis) -> None:
    info = b'{"Version":"1.4.2","HostName":"h","MountPoint":"/mnt","ProcessID":1}'
    eng.save_session(1, 1795607292, info)
    eng.save_session(2, 1795607000, b"{}")
    assert raw.zrange("allSessions", 0, -1, withscores=True) == [(b"2", 1795607000.0), (b"1", 1795607292.0)]
    assert raw.hget("sessionInfos", "1") == info
    eng.refresh_session(2, 1795609999)
    got = {s.sid: (s.expire, s.info) for s in eng.list_sessions()}
    assert got == {1: (1795607292.0, info), 2: (1795609999.0, b"{}")}
    raw.zadd("allSessions", {"3": 5})  # a legacy client without info
    assert [s.info for s in eng.list_sessions() if s.sid == 3] == [b"{}"]

    owner = 0xABC
    eng.txn(lambda tx: (tx.set_flock(4, 2, owner, "W"), tx.set_flock(4, 1, owner, "R"),
                        tx.add_sustained(2, 99)))
    eng.delete_session(2)
    assert raw.hgetall("lockf4") == {b"1_0000000000000ABC": b"R"}  # other sessions' locks stay
    assert not raw.exists("locked2", "session2")
    assert raw.hget("sessionInfos", "2") is None
    assert {s.sid for s in eng.list_sessions()} == {1, 3}


def test_dir_stats(eng: RedisEngine, raw: redis.Redis) -> None:
    assert eng.get_dir_stat(1) is None
    eng.update_dir_stats({1: (100, 4096, 1), 2: (0, 0, 3)})
    assert raw.hget("dirDataLength", "1") == b"100"
    assert raw.hget("dirUsedSpace", "1") == b"4096"
    assert raw.hget("dirUsedInodes", "1") == b"1"
    assert eng.get_dir_stat(1) == (100, 4096, 1)
    assert eng.get_dir_stat(2) == (0, 0, 3)
    eng.update_dir_stats({1: (-100, -4096, -1)})
    assert eng.get_dir_stat(1) == (0, 0, 0)
    eng.update_dir_stats({})
    # zeros record a new directory, as JuiceFS's mkdir HSETs "0" into the three hashes
    eng.update_dir_stats({5: (0, 0, 0)})
    assert raw.hget("dirUsedSpace", "5") == b"0" and eng.get_dir_stat(5) == (0, 0, 0)
    raw.hdel("dirUsedInodes", "5")
    assert eng.get_dir_stat(5) is None  # a partial record counts as never recorded


def test_ping_and_warnings(eng: RedisEngine, raw: redis.Redis) -> None:
    assert 0 <= eng.ping() < 5
    assert eng.warnings() == []
    old = raw.config_get("maxmemory-policy")["maxmemory-policy"]
    try:
        raw.config_set("maxmemory-policy", "allkeys-lru")
        w = eng.warnings()
        assert w == ["maxmemory_policy is 'allkeys-lru',  we will try to reconfigure it to 'noeviction'."]
        assert raw.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
    finally:
        raw.config_set("maxmemory-policy", old)


# --- optimistic concurrency -----------------------------------------------------------------------


def test_conflicting_txns_are_retried(url: str, raw: redis.Redis) -> None:
    engines = [new_engine(url, retries=200) for _ in range(2)]
    n = 50
    runs = 0
    errors: list[BaseException] = []

    def bump(tx):
        nonlocal runs
        runs += 1
        a = tx.get_attr(1) or _dir(nlink=0)
        time.sleep(0.0005)  # widen the race window
        a.nlink += 1
        tx.set_attr(1, a)

    def worker(e):
        try:
            for _ in range(n):
                e.txn(bump)
        except BaseException as ex:  # surfaced below: a thread's exception would only warn
            errors.append(ex)

    threads = [threading.Thread(target=worker, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert engines[0].txn(lambda tx: tx.get_attr(1)).nlink == 2 * n
    assert runs > 2 * n  # some runs lost the race and were re-run
    for e in engines:
        e.close()


def test_conflict_gives_up_after_retries(url: str, raw: redis.Redis) -> None:
    e = new_engine(url, retries=3)
    calls = 0

    def always_conflict(tx):
        nonlocal calls
        calls += 1
        tx.get_attr(1)
        raw.set("i1", codec.encode_attr(_dir(nlink=calls)))  # someone else writes meanwhile
        tx.set_attr(1, _dir())

    from pyjuicefs.errors import TxnConflict
    with pytest.raises(TxnConflict):
        e.txn(always_conflict)
    assert calls == 3
    e.close()


def test_readonly_reads_are_a_snapshot(url: str, raw: redis.Redis) -> None:
    e = new_engine(url, retries=5)
    runs = 0

    def read_two(tx):
        nonlocal runs
        runs += 1
        a = tx.get_attr(1)
        if runs == 1:
            raw.set("i1", codec.encode_attr(_dir(nlink=7)))  # changes between our two reads
        return a, tx.get_attr(2)

    a, _ = e.txn(read_two, readonly=True)
    assert runs == 2 and a.nlink == 7
    e.close()


def test_stale_watches_do_not_leak(url: str, raw: redis.Redis) -> None:
    e = new_engine(url, retries=1)  # one try: a false conflict would raise TxnConflict
    e.txn(lambda tx: tx.get_attr(1), readonly=True)  # one round trip: its WATCH is left behind
    raw.set("i1", codec.encode_attr(_dir(nlink=9)))
    e.txn(lambda tx: tx.set_attr(2, _dir()))  # same pooled connection, blind write
    assert e.txn(lambda tx: tx.get_attr(2)) == _dir()

    def fail(tx):
        tx.get_attr(1)
        raise FsError(5)

    with pytest.raises(FsError):
        e.txn(fail)
    raw.set("i1", codec.encode_attr(_dir(nlink=10)))
    e.txn(lambda tx: (tx.get_attr(3), tx.set_attr(3, _dir())))
    # plain engine calls use another pool, so their MULTI/EXEC never meets a stale WATCH
    e.txn(lambda tx: tx.get_attr(1))
    raw.set("i1", codec.encode_attr(_dir(nlink=11)))
    e.save_session(1, 100, b"{}")
    e.update_dir_stats({1: (1, 1, 1)})
    e.close()


def test_error_in_fn_releases_watches(eng: RedisEngine) -> None:
    def fail(tx):
        tx.get_attr(1)
        tx.set_attr(1, _dir())
        raise FsError(2)

    with pytest.raises(FsError):
        eng.txn(fail)
    assert eng.txn(lambda tx: tx.get_attr(1)) is None  # nothing was written
    # the pooled connection is clean: a later txn on it commits normally
    eng.txn(lambda tx: (tx.get_attr(1), tx.set_attr(1, _dir())))
    assert eng.txn(lambda tx: tx.get_attr(1)) == _dir()


def test_server_gone_is_transient(eng: RedisEngine) -> None:
    e = RedisEngine(f"redis://127.0.0.1:{_free_port()}/0")
    with pytest.raises(TransientMetaError):
        e.txn(lambda tx: tx.get_attr(1))
    with pytest.raises(TransientMetaError):
        e.load_setting()


# --- URLs and bad input -----------------------------------------------------------------------------


def _fails_fast(url: str, env: dict[str, str] | None = None) -> str:
    old = {k: os.environ.get(k) for k in ("META_PASSWORD", "REDIS_PASSWORD", "META_PASSWORD_FILE")}
    for k in old:
        os.environ.pop(k, None)
    os.environ.update(env or {})
    try:
        start = time.monotonic()
        with pytest.raises(UserError) as ei:
            new_engine(url).ping()
        assert time.monotonic() - start < 5
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    msg = str(ei.value)
    assert "\n" not in msg
    return msg


def test_wrong_password(auth_redis: int) -> None:
    msg = _fails_fast(f"redis://:wrongpw@127.0.0.1:{auth_redis}/1")
    assert "authentication failed" in msg and "wrongpw" not in msg
    msg = _fails_fast(f"redis://127.0.0.1:{auth_redis}/1")  # no password at all
    assert "authentication failed" in msg
    msg = _fails_fast(f"redis://nobody:pw123@127.0.0.1:{auth_redis}/1")
    assert "authentication failed" in msg and "pw123" not in msg


def test_password_sources(auth_redis: int, tmp_path) -> None:
    base = f"redis://127.0.0.1:{auth_redis}/1"
    assert new_engine(f"redis://:s3cret@127.0.0.1:{auth_redis}/1").ping() < 5
    assert new_engine(f"redis://bob:bobpw@127.0.0.1:{auth_redis}/2").ping() < 5
    os.environ["META_PASSWORD"] = "s3cret"
    try:
        assert new_engine(base).ping() < 5
    finally:
        del os.environ["META_PASSWORD"]
    pw = tmp_path / "pw"
    pw.write_text("s3cret\n")
    os.environ["META_PASSWORD_FILE"] = str(pw)
    try:
        assert new_engine(base).ping() < 5
    finally:
        del os.environ["META_PASSWORD_FILE"]
    msg = _fails_fast(base, {"META_PASSWORD": "envwrong"})
    assert "envwrong" not in msg


def test_password_for_server_without_one(redis_server) -> None:
    msg = _fails_fast(f"redis://:needless@127.0.0.1:{redis_server.port}/1")
    assert "requires none" in msg and "needless" not in msg


def test_db_out_of_range(auth_redis: int) -> None:
    msg = _fails_fast(f"redis://:s3cret@127.0.0.1:{auth_redis}/9")
    assert "out of range" in msg and "s3cret" not in msg


def test_unreachable(redis_server) -> None:
    msg = _fails_fast(f"redis://:pw@127.0.0.1:{_free_port()}/1")
    assert "cannot connect" in msg and "pw@" not in msg
    msg = _fails_fast("redis://no-such-host.invalid:6379/1")
    assert "cannot connect" in msg


@pytest.mark.parametrize("bad", [
    "redis://127.0.0.1:notaport/1",
    "redis://127.0.0.1:6379/abc",
    "redis://127.0.0.1:6379/1?bogus=1",
    "redis://127.0.0.1:99999/1",
    "redis://mymaster,10.0.0.1,10.0.0.2:26379/1",
    "redis://10.0.0.1:6379,10.0.0.2:6379/1",
    "unix://",
])
def test_malformed_urls(bad: str) -> None:
    start = time.monotonic()
    with pytest.raises(UserError) as ei:
        new_engine(bad.replace("redis://", "redis://:topsecret@", 1)).ping()
    assert time.monotonic() - start < 5
    assert "topsecret" not in str(ei.value)


def test_url_forms() -> None:
    a = parse_redis_url("redis://localhost")
    assert (a.host, a.port, a.db, a.password) == ("localhost", 6379, 0, None)
    a = parse_redis_url("redis://u:p%40ss@h:1234/5?read-timeout=5s")
    assert (a.username, a.password, a.host, a.port, a.db, a.read_timeout) == ("u", "p@ss", "h", 1234, 5, 5.0)
    a = parse_redis_url("unix:///var/run/redis.sock?db=3")
    assert (a.path, a.db) == ("/var/run/redis.sock", 3)
    a = parse_redis_url("rediss://h:6380/1?insecure-skip-verify=true&tls-ca-cert-file=/ca.pem")
    kw = a.client_kwargs()
    assert kw["ssl"] and kw["ssl_cert_reqs"] == "none" and kw["ssl_ca_certs"] == "/ca.pem"


def test_unix_socket(tmp_path) -> None:
    exe = shutil.which("redis-server")
    sock = tmp_path / "r.sock"
    proc = subprocess.Popen([exe, "--port", "0", "--unixsocket", str(sock), "--save", "", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        e = new_engine(f"unix://{sock}?db=2")
        e.ping()
        e.save_setting(b"{}")
        assert redis.Redis(unix_socket_path=str(sock), db=2).get("setting") == b"{}"
        e.close()
    finally:
        proc.terminate()
        proc.wait(10)
