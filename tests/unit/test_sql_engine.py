"""The SQL engine on real SQLite, PostgreSQL and MariaDB: every Txn/Engine method, concurrency,
connection loss, and the one-line errors for bad URLs and unusable servers."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from pyjuicefs.errors import MetaError, TransientMetaError, TxnConflict, UserError
from pyjuicefs.meta import codec
from pyjuicefs.meta.sql import SQLEngine, time_from_db, time_to_db
from pyjuicefs.meta.sql_dialects import parse_url
from pyjuicefs.meta.types import Attr, Slice

KINDS = ["sqlite3", "postgres", "mysql"]


@pytest.fixture(params=KINDS)
def engine(request, new_meta_url):
    e = SQLEngine(new_meta_url(request.param))
    e.init_schema()
    yield e
    e.close()


def raw(e: SQLEngine, sql: str, args: tuple = ()) -> list:
    """Rows straight from the database, bypassing the engine's decoding."""
    return e._run(lambda tx: tx._all(sql, args), readonly=True)


def _attr(**kw) -> Attr:
    base = dict(typ=1, mode=0o644, uid=1000, gid=100, atime=1_700_000_000, atimensec=123_456_789,
                mtime=1_700_000_001, mtimensec=999_999_999, ctime=1_700_000_002, ctimensec=1, nlink=1,
                length=12345, parent=1)
    base.update(kw)
    return Attr(**base)


# --- URLs (no server) ---------------------------------------------------------------------------

def test_parse_sqlite_urls(monkeypatch):
    d = parse_url("sqlite3://rel/dir/x.db")
    assert (d.name, d.database, d.prefix) == ("sqlite3", "rel/dir/x.db", "jfs_")
    d = parse_url("sqlite3:///abs/x.db?_busy_timeout=2000&cache=shared&table_prefix=vol1")
    assert (d.database, d.busy_timeout_ms, d.prefix) == ("/abs/x.db", 2000, "jfs_vol1_")
    assert parse_url("sqlite3:///x.db?_timeout=700").busy_timeout_ms == 700


def test_parse_postgres_urls(monkeypatch):
    monkeypatch.delenv("META_PASSWORD", raising=False)
    d = parse_url("postgres://u:p%40ss@db.example:6543/vol?sslmode=disable&search_path=s1&max_open_conns=3")
    assert (d.user, d.password, d.host, d.port, d.database) == ("u", "p@ss", "db.example", 6543, "vol")
    assert d.params["sslmode"] == "disable" and d.params["search_path"] == "s1"
    d = parse_url("postgres://u@h/vol")
    assert (d.port, d.password) == (5432, "")
    monkeypatch.setenv("META_PASSWORD", "fromenv")
    assert parse_url("postgres://u@h/vol").password == "fromenv"
    assert parse_url("postgres://u:inurl@h/vol").password == "inurl"


def test_parse_mysql_urls(monkeypatch):
    monkeypatch.delenv("META_PASSWORD", raising=False)
    d = parse_url("mysql://root:pa:ss@(10.0.0.1:3307)/jfs")
    assert (d.user, d.password, d.host, d.port, d.database) == ("root", "pa:ss", "10.0.0.1", 3307, "jfs")
    d = parse_url("mysql://root:p%2Fw@tcp(h)/jfs?charset=utf8mb4")
    assert (d.password, d.host, d.port) == ("p/w", "h", 3306)
    d = parse_url("mysql://u@unix(/run/mysqld/mysqld.sock)/jfs")
    assert (d.unix_socket, d.database) == ("/run/mysqld/mysqld.sock", "jfs")
    d = parse_url("mysql://u:p@h:3308/jfs")  # tolerated without the Go DSN parentheses
    assert (d.host, d.port) == ("h", 3308)
    monkeypatch.setenv("META_PASSWORD", "fromenv")
    assert parse_url("mysql://u@(h:1)/jfs").password == "fromenv"


@pytest.mark.parametrize("url", [
    "sqlite3://", "postgres://u:secretpw@h:5432", "postgres://u:secretpw@h:notaport/db",
    "mysql://u:secretpw@(h:3306)", "mysql://u:secretpw@(h:99999)/db", "mysql://u:secretpw@foo(h)/db",
    "postgres://u:secretpw@h/db?search_path=a,b", "sqlite3:///x.db?_busy_timeout=soon",
    "sqlite3:///x.db?table_prefix=a-b",
])
def test_malformed_urls(url):
    with pytest.raises(UserError) as ei:
        SQLEngine(url)
    assert "secretpw" not in str(ei.value)
    assert "\n" not in str(ei.value)


def test_time_encoding_matches_juicefs():
    # root inode written by `juicefs format`: atime column 1795607192593629, atimensec 907
    assert time_to_db(1795607192, 593629907) == (1795607192593629, 907)
    assert time_from_db(1795607192593629, 907) == (1795607192, 593629907)
    for sec, nsec in [(0, 0), (1, 999_999_999), (2**40, 5), (1_700_000_000, 1000)]:
        assert time_from_db(*time_to_db(sec, nsec)) == (sec, nsec)
    # before 1970 Go truncates toward zero and the remainder keeps the sign
    assert time_to_db(-2, 500_000_001) == (-1_499_999, -999)


# --- records ------------------------------------------------------------------------------------

def test_nodes(engine):
    a = _attr(rdev=7, access_acl=3, default_acl=4, tier=2, flags=1)
    b = _attr(typ=2, mode=0o755, nlink=2, length=4096, parent=0)
    engine.txn(lambda tx: (tx.set_attr(10, a), tx.set_attr(11, b)))
    assert engine.txn(lambda tx: tx.get_attr(10), readonly=True) == a
    assert engine.txn(lambda tx: tx.get_attrs([11, 99, 10, 11])) == [b, None, a, b]
    row = raw(engine, "SELECT atime, atimensec, mtime, mtimensec, mode, type, rdev, parent, access_acl_id, "
                      "default_acl_id, tier_id FROM jfs_node WHERE inode=10")[0]
    assert tuple(row) == (1_700_000_000_123_456, 789, 1_700_000_001_999_999, 999, 0o644, 1, 7, 1, 3, 4, 2)
    a2 = a.copy()
    a2.length, a2.nlink = 1, 3
    engine.txn(lambda tx: tx.set_attr(10, a2))
    assert engine.txn(lambda tx: tx.get_attr(10)) == a2
    engine.txn(lambda tx: tx.delete_attr(10))
    assert engine.txn(lambda tx: tx.get_attr(10)) is None
    # NULL columns as left by older clients read as 0
    engine._run(lambda tx: tx._x("UPDATE jfs_node SET rdev=NULL, parent=NULL, access_acl_id=NULL, "
                                 "default_acl_id=NULL, tier_id=NULL WHERE inode=11"))
    got = engine.txn(lambda tx: tx.get_attr(11))
    assert (got.rdev, got.parent, got.access_acl, got.default_acl, got.tier) == (0, 0, 0, 0, 0)


def test_entries_and_parents(engine):
    names = [b"a", b"\xff\xfebin", "ünï".encode(), b"x" * 255]

    def fill(tx):
        for i, n in enumerate(names):
            tx.set_entry(1, n, 1, 100 + i)
        tx.set_entry(2, b"link", 1, 100)
        tx.set_entry(3, b"link2", 1, 100)
        tx.set_entry(3, b"link3", 1, 100)

    engine.txn(fill)
    assert engine.txn(lambda tx: tx.get_entry(1, b"\xff\xfebin")) == (1, 101)
    assert engine.txn(lambda tx: tx.get_entry(1, b"missing")) is None
    listed = engine.txn(lambda tx: tx.list_entries(1), readonly=True)
    assert sorted(listed) == sorted((n, 1, 100 + i) for i, n in enumerate(names))
    assert listed == engine.txn(lambda tx: tx.list_entries(1))  # stable order
    assert raw(engine, "SELECT name FROM jfs_edge WHERE inode=101")[0][0] == b"\xff\xfebin"
    assert engine.txn(lambda tx: tx.get_parents(100)) == {1: 1, 2: 1, 3: 2}
    engine.txn(lambda tx: (tx.incr_parent(100, 2, 1), tx.delete_parents(100)))  # edges are the records
    engine.txn(lambda tx: tx.set_entry(1, b"a", 2, 500))  # replace
    assert engine.txn(lambda tx: tx.get_entry(1, b"a")) == (2, 500)
    assert engine.txn(lambda tx: (tx.has_entries(1), tx.has_entries(999))) == (True, False)
    engine.txn(lambda tx: [tx.delete_entry(1, n) for n in names])
    assert engine.txn(lambda tx: tx.has_entries(1)) is False


def test_symlinks_and_xattrs(engine):
    target = b"/some/where/\xff" + b"t" * 3000
    engine.txn(lambda tx: tx.set_symlink(5, target))
    assert engine.txn(lambda tx: tx.get_symlink(5)) == target
    engine.txn(lambda tx: tx.delete_symlink(5))
    assert engine.txn(lambda tx: tx.get_symlink(5)) is None

    big = bytes(range(256)) * 200
    engine.txn(lambda tx: (tx.set_xattr(5, b"user.a", b"1"), tx.set_xattr(5, b"user.big", big),
                           tx.set_xattr(6, b"user.a", b"other")))
    engine.txn(lambda tx: tx.set_xattr(5, b"user.a", b"2"))
    assert engine.txn(lambda tx: tx.get_xattr(5, b"user.a")) == b"2"
    assert engine.txn(lambda tx: tx.list_xattrs(5), readonly=True) == {b"user.a": b"2", b"user.big": big}
    assert raw(engine, "SELECT name FROM jfs_xattr WHERE inode=6")[0][0] in ("user.a", b"user.a")
    engine.txn(lambda tx: tx.delete_xattr(5, b"user.a"))
    assert engine.txn(lambda tx: tx.get_xattr(5, b"user.a")) is None
    engine.txn(lambda tx: tx.delete_xattrs(5))
    assert engine.txn(lambda tx: tx.list_xattrs(5)) == {}
    assert engine.txn(lambda tx: tx.list_xattrs(6)) == {b"user.a": b"other"}


def test_chunks_and_slice_refs(engine):
    s1, s2, s3 = Slice(0, 11, 1000, 0, 1000), Slice(1000, 12, 500, 0, 500), Slice(0, 0, 0, 0, 4096)
    engine.txn(lambda tx: (tx.append_slice(7, 0, s1), tx.append_slice(7, 0, s2), tx.append_slice(7, 2, s3)))
    assert engine.txn(lambda tx: tx.get_chunk(7, 0)) == [s1, s2]
    assert engine.txn(lambda tx: tx.chunk_indexes(7)) == [0, 2]
    assert engine.txn(lambda tx: tx.get_chunk(7, 1)) == []
    blob = raw(engine, "SELECT slices FROM jfs_chunk WHERE inode=7 AND indx=0")[0][0]
    assert bytes(blob) == codec.encode_slice(s1) + codec.encode_slice(s2)
    # a written slice is tracked with refs=1; holes (id 0) are not
    refs = sorted(map(tuple, raw(engine, "SELECT chunkid, size, refs FROM jfs_chunk_ref")))
    assert refs == [(11, 1000, 1), (12, 500, 1)]

    # copy_file_range: the same slice in another file gains a reference
    c = Slice(0, 11, 1000, 10, 90)
    engine.txn(lambda tx: (tx.append_slice(8, 0, c), tx.incr_slice_ref(11, 1000, 1)))
    assert raw(engine, "SELECT refs FROM jfs_chunk_ref WHERE chunkid=11")[0][0] == 2
    assert engine.delete_chunk(7, 0) == [(12, 500)]  # 11 is still used by inode 8
    assert engine.txn(lambda tx: tx.get_chunk(7, 0)) == []
    assert [tuple(r) for r in raw(engine, "SELECT chunkid, refs FROM jfs_chunk_ref")] == [(11, 1)]
    assert engine.delete_chunk(8, 0) == [(11, 1000)]
    assert raw(engine, "SELECT chunkid FROM jfs_chunk_ref") == []
    assert engine.delete_chunk(8, 0) == []  # already gone
    assert engine.delete_chunk(7, 2) == []  # only a hole

    # set_chunk replaces (compaction) and tracks the new slice; an empty list deletes
    new = Slice(0, 20, 1500, 0, 1500)
    engine.txn(lambda tx: tx.set_chunk(9, 0, [new, s3]))
    assert engine.txn(lambda tx: tx.get_chunk(9, 0)) == [new, s3]
    assert raw(engine, "SELECT refs FROM jfs_chunk_ref WHERE chunkid=20")[0][0] == 1
    engine.txn(lambda tx: tx.set_chunk(9, 0, []))
    assert engine.txn(lambda tx: tx.chunk_indexes(9)) == []
    # an untracked slice counts as one reference
    engine.txn(lambda tx: tx.incr_slice_ref(30, 64, 1))
    assert raw(engine, "SELECT refs FROM jfs_chunk_ref WHERE chunkid=30")[0][0] == 2


def test_chunk_appended_by_juicefs_sql(engine):
    """JuiceFS appends with `slices || ?` (TEXT in SQLite) / CONCAT: such values still decode."""
    a, b = codec.encode_slice(Slice(0, 1, 10, 0, 10)), codec.encode_slice(Slice(10, 2, 10, 0, 10))
    op = "CONCAT(slices, ?)" if engine.name == "mysql" else "slices || ?"
    engine._run(lambda tx: tx._x("INSERT INTO jfs_chunk (inode, indx, slices) VALUES (?, ?, ?)", (3, 0, a)))
    engine._run(lambda tx: tx._x(f"UPDATE jfs_chunk SET slices={op} WHERE inode=3 AND indx=0", (b,)))
    assert engine.txn(lambda tx: tx.get_chunk(3, 0)) == codec.decode_slices(a + b)


def test_counters(engine):
    assert {n: engine.get_counter(n) for n in ("nextInode", "nextChunk", "nextSession", "usedSpace")} == \
        {"nextInode": 2, "nextChunk": 1, "nextSession": 0, "usedSpace": 0}
    assert engine.incr_counter("nextInode", 1024) == 1026
    assert engine.incr_counter("nextTrash", 1) == 1  # a missing counter starts at 0
    assert engine.get_counter("nothing") == 0
    engine.txn(lambda tx: (tx.incr_counter("usedSpace", 8192), tx.incr_counter("totalInodes", 2),
                           tx.incr_counter("usedSpace", -4096)))
    assert (engine.get_counter("usedSpace"), engine.get_counter("totalInodes")) == (4096, 2)
    assert raw(engine, "SELECT value FROM jfs_counter WHERE name='usedSpace'")[0][0] == 4096

    def fail(tx):
        tx.incr_counter("usedSpace", 100)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        engine.txn(fail)
    assert engine.get_counter("usedSpace") == 4096  # nothing from a failed txn
    assert engine.set_counter_if_small("lastCleanupFiles", 1000, 60) is True
    assert engine.set_counter_if_small("lastCleanupFiles", 1030, 60) is False
    assert engine.set_counter_if_small("lastCleanupFiles", 1060, 60) is True
    assert engine.get_counter("lastCleanupFiles") == 1060


def test_settings_reset_and_missing_tables(new_meta_url):
    for kind in KINDS:
        e = SQLEngine(new_meta_url(kind))
        try:
            assert e.load_setting() is None  # no tables at all
            e.init_schema()
            assert e.load_setting() is None
            body = '{\n"Name": "vol",\n"UUID": "ü"\n}'.encode()
            e.save_setting(body)
            e.save_setting(body)
            assert e.load_setting() == body
            e.txn(lambda tx: tx.set_attr(1, _attr()))
            e.incr_counter("nextInode", 100)
            e.reset()
            assert e.load_setting() is None
            assert e.txn(lambda tx: tx.get_attr(1)) is None
            assert e.get_counter("nextInode") == 2
        finally:
            e.close()


def test_sessions_and_locks(engine):
    big_owner = (1 << 64) - 5  # JuiceFS stores owners as signed 64-bit
    engine.save_session(3, 1_800_000_000.7, b'{"Version":"x"}')
    engine.save_session(4, 10.0, b"{}")
    engine.refresh_session(3, 1_900_000_000)
    sess = {s.sid: s for s in engine.list_sessions()}
    assert (sess[3].expire, sess[3].info, sess[4].expire) == (1_900_000_000, b'{"Version":"x"}', 10)

    def locks(tx):
        tx.add_sustained(3, 50)
        tx.add_sustained(3, 50)
        tx.add_sustained(3, 51)
        tx.set_flock(60, 3, big_owner, "W")
        tx.set_flock(60, 4, 1, "R")
        tx.set_plock(61, 3, 7, codec.encode_plock_records([(1, 99, 0, 100)]))

    engine.txn(locks)
    assert engine.get_sustained(3) == [50, 51]
    assert engine.txn(lambda tx: tx.get_flocks(60)) == {(3, big_owner): "W", (4, 1): "R"}
    assert raw(engine, "SELECT owner, ltype FROM jfs_flock WHERE sid=3")[0][:] in ([-5, ord("W")], (-5, ord("W")))
    assert engine.txn(lambda tx: tx.get_plocks(61)) == {(3, 7): codec.encode_plock_records([(1, 99, 0, 100)])}
    assert engine.list_session_locks(3) == ([60], [61])
    engine.txn(lambda tx: (tx.set_flock(60, 4, 1, "W"), tx.delete_flock(60, 3, big_owner),
                           tx.delete_sustained(3, 51), tx.set_plock(61, 3, 7, b"")))
    assert engine.txn(lambda tx: (tx.get_flocks(60), tx.get_plocks(61))) == ({(4, 1): "W"}, {})
    engine.delete_session(4)
    assert [s.sid for s in engine.list_sessions()] == [3]
    assert engine.txn(lambda tx: tx.get_flocks(60)) == {}
    engine.delete_session(3)
    assert engine.get_sustained(3) == [] and engine.list_sessions() == []


def test_delfiles_and_dir_stats(engine):
    engine.txn(lambda tx: (tx.add_delfile(70, 5000, 1_700_000_000), tx.add_delfile(71, 0, 1_700_000_001)))
    assert [(d.inode, d.length, d.expire) for d in engine.list_delfiles()] == \
        [(70, 5000, 1_700_000_000), (71, 0, 1_700_000_001)]
    engine.delete_delfile(70)
    assert [d.inode for d in engine.list_delfiles()] == [71]

    assert engine.get_dir_stat(1) is None
    engine.update_dir_stats({1: (100, 4096, 1), 2: (0, 0, 0)})
    engine.update_dir_stats({1: (-50, 4096, 1)})
    assert engine.get_dir_stat(1) == (50, 8192, 2)
    assert engine.get_dir_stat(2) is None
    engine.txn(lambda tx: tx.delete_attr(1))  # a removed directory loses its usage record
    assert engine.get_dir_stat(1) is None


def test_txn_rollback_and_readonly(engine):
    def half(tx):
        tx.set_attr(20, _attr())
        tx.set_entry(1, b"half", 1, 20)
        raise KeyError("stop")

    with pytest.raises(KeyError):
        engine.txn(half)
    assert engine.txn(lambda tx: (tx.get_attr(20), tx.get_entry(1, b"half"))) == (None, None)
    with pytest.raises(MetaError):
        engine.txn(lambda tx: tx.set_attr(21, _attr()), readonly=True)
    assert engine.txn(lambda tx: tx.get_attr(21)) is None
    assert engine.ping() < 1


# --- concurrency --------------------------------------------------------------------------------

def test_concurrent_txns_lose_no_update(engine):
    engine.txn(lambda tx: tx.set_attr(30, _attr(nlink=0)))
    threads, per = 4, 15
    errors: list[BaseException] = []

    def bump(tx):
        a = tx.get_attr(30)
        a.nlink += 1
        tx.set_attr(30, a)
        tx.set_entry(30, f"e{a.nlink}".encode(), 1, 1000 + a.nlink)
        tx.incr_counter("totalInodes", 1)

    def worker():
        try:
            for _ in range(per):
                engine.txn(bump)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors
    assert engine.txn(lambda tx: tx.get_attr(30)).nlink == threads * per
    assert len(engine.txn(lambda tx: tx.list_entries(30))) == threads * per
    assert engine.get_counter("totalInodes") == threads * per


def test_concurrent_id_allocation_and_dir_stats(engine):
    got: list[int] = []
    lock = threading.Lock()

    def worker():
        for _ in range(10):
            v = engine.incr_counter("nextChunk", 4096)
            engine.update_dir_stats({1: (1, 4096, 1)})
            with lock:
                got.append(v)

    ts = [threading.Thread(target=worker) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert sorted(got) == [1 + 4096 * i for i in range(1, 41)]
    assert engine.get_dir_stat(1) == (40, 40 * 4096, 40)


def test_retries_exhausted_raise_txn_conflict(new_meta_url):
    e = SQLEngine(new_meta_url("sqlite3"), retries=2)
    e.init_schema()
    try:
        calls = []

        def always_busy(tx):
            calls.append(1)
            import sqlite3
            raise sqlite3.OperationalError("database is locked")

        with pytest.raises(TxnConflict):
            e.txn(always_busy)
        assert len(calls) == 3
    finally:
        e.close()


@pytest.mark.parametrize("kind", ["postgres", "mysql"])
def test_reconnects_after_the_server_drops_the_connection(kind, new_meta_url):
    e = SQLEngine(new_meta_url(kind))
    other = SQLEngine(new_meta_url(kind))
    try:
        e.init_schema()
        me = "SELECT pg_backend_pid()" if kind == "postgres" else "SELECT CONNECTION_ID()"
        pid = e._run(lambda tx: tx._one(me))[0]
        other._autocommit("SELECT pg_terminate_backend(?)" if kind == "postgres" else f"KILL {int(pid)}",
                          (pid,) if kind == "postgres" else ())
        time.sleep(0.2)
        # the dead connection is noticed when the next txn begins, and replaced
        e.txn(lambda tx: tx.set_attr(40, _attr()))
        assert e.txn(lambda tx: tx.get_attr(40)) == _attr()
    finally:
        e.close()
        other.close()


def test_lost_connection_inside_a_txn_is_transient(new_meta_url):
    e = SQLEngine(new_meta_url("postgres"))
    try:
        e.init_schema()

        def die(tx):
            tx._x("SELECT pg_terminate_backend(pg_backend_pid())")

        with pytest.raises(TransientMetaError):
            e.txn(die)
        e.txn(lambda tx: tx.set_attr(41, _attr()))  # usable again
    finally:
        e.close()


# --- bad input: one clear line, fast, never the password ----------------------------------------

def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _swap(url: str, *, password: str | None = None, db: str | None = None, port: int | None = None) -> str:
    d = parse_url(url)
    pw = password if password is not None else d.password
    name = db or d.database
    p = port or d.port
    if d.name == "postgres":
        return f"postgres://{d.user}:{pw}@{d.host}:{p}/{name}"
    return f"mysql://{d.user}:{pw}@({d.host}:{p})/{name}"


@pytest.mark.parametrize("kind", ["postgres", "mysql"])
@pytest.mark.parametrize("case", ["password", "database", "port"])
def test_unusable_server_gives_one_line(kind, case, new_meta_url, monkeypatch):
    monkeypatch.delenv("META_PASSWORD", raising=False)
    good = new_meta_url(kind)
    secret = "Wr0ngS3cret"
    if case == "password":
        url, expect = _swap(good, password=secret), "wrong password"
    elif case == "database":  # right password: JuiceFS does not create databases
        url, expect = _swap(good, db="no_such_db_here"), "does not exist"
        secret = parse_url(good).password
    else:
        url, expect = _swap(good, password=secret, port=_closed_port()), "connection refused"
    e = SQLEngine(url)
    start = time.monotonic()
    with pytest.raises(UserError) as ei:
        e.ping()
    assert time.monotonic() - start < 5
    msg = str(ei.value)
    assert expect in msg and "\n" not in msg
    assert secret not in msg.replace("password", "")
    if case == "database":
        assert "no_such_db_here" in msg
    e.close()


def test_sqlite_missing_directory(tmp_path):
    e = SQLEngine(f"sqlite3://{tmp_path}/nowhere/x.db")
    with pytest.raises(UserError) as ei:
        e.load_setting()
    assert "does not exist" in str(ei.value)


def test_unused_drivers_are_not_imported():
    import subprocess
    import sys

    code = ("import sys; from pyjuicefs.meta import new_engine; e = new_engine('sqlite3:///tmp/unused.db'); "
            "print('psycopg' in sys.modules, 'pymysql' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_table_prefix_and_search_path(new_meta_url):
    from pyjuicefs.meta import new_engine

    e = new_engine(new_meta_url("sqlite3") + "?table_prefix=vol1&_busy_timeout=3000")
    assert isinstance(e, SQLEngine)
    e.init_schema()
    e.txn(lambda tx: tx.set_entry(1, b"x", 1, 2))
    assert raw(e, "SELECT inode FROM jfs_vol1_edge") == [(2,)]
    e.close()

    url = new_meta_url("postgres")
    admin = SQLEngine(url)
    admin._autocommit("CREATE SCHEMA jfsschema")
    e = new_engine(url + "?sslmode=prefer&search_path=jfsschema")
    e.init_schema()
    e.txn(lambda tx: tx.set_entry(1, b"x", 1, 2))
    assert admin._autocommit("SELECT count(*) FROM information_schema.tables WHERE table_schema='jfsschema' "
                             "AND table_name='jfs_edge'") == [(1,)]
    assert admin._autocommit("SELECT inode FROM jfsschema.jfs_edge") == [(2,)]
    e.close()
    admin.close()
