"""The SQL metadata engine (SQLite, PostgreSQL, MySQL/MariaDB) in JuiceFS 1.4's tables.

Concurrency model:
* one connection per thread (threading.local), opened on first use, all closed by close();
* a write txn runs as one database transaction: SQLite `BEGIN IMMEDIATE` (a single writer, others
  wait up to the busy timeout); PostgreSQL and MySQL REPEATABLE READ, with `SELECT … FOR UPDATE`
  for the single-record reads of a write txn so that read-then-write never loses an update
  (MySQL's plain reads would not notice a concurrent commit). Serialization failures, deadlocks,
  lock-wait timeouts, "database is locked" and duplicate keys re-run the txn with jittered
  backoff, at most `retries` times, then TxnConflict;
* volume counters (usedSpace, totalInodes) changed inside txns are added after the commit in a
  short READ COMMITTED statement, as JuiceFS does, so that every write does not conflict on them.

Value encodings (JuiceFS 1.4.2, pkg/meta/sql.go): node times are microseconds in atime/mtime/ctime
plus the nanosecond remainder (0..999) in *nsec; flock.ltype is the byte 'R' or 'W'; lock owners
are stored as signed 64-bit; chunk.slices is the concatenation of 24-byte slice records;
chunk_ref.refs counts every reference of a slice (a write inserts refs=1).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from ..errors import MetaError, TransientMetaError, TxnConflict, UserError
from . import codec
from .engine import DelFile, Engine, SessionRecord, Txn
from .sql_dialects import CONN, RETRY, Dialect, parse_url
from .sql_schema import TABLE_NAMES, create_statements
from .types import Attr, Slice

log = logging.getLogger(__name__)
T = TypeVar("T")

NODE_COLS = ("inode", "type", "flags", "mode", "uid", "gid", "atime", "mtime", "ctime", "atimensec",
             "mtimensec", "ctimensec", "nlink", "length", "rdev", "parent", "access_acl_id",
             "default_acl_id", "tier_id")
_U64 = 1 << 64
# JuiceFS's doInit seeds these rows; without nextChunk=1 a client would hand out slice id 0 (a hole)
INITIAL_COUNTERS = {"nextInode": 2, "nextChunk": 1, "nextSession": 0, "usedSpace": 0, "totalInodes": 0,
                    "nextCleanupSlices": 0}


def _tdiv(a: int, b: int) -> int:
    """Integer division truncating toward zero (Go's `/`)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def time_to_db(sec: int, nsec: int) -> tuple[int, int]:
    """(microseconds, nanosecond remainder) as JuiceFS's node.setXtime stores them."""
    ns = sec * 1_000_000_000 + nsec
    us = _tdiv(ns, 1000)
    return us, ns - us * 1000


def time_from_db(us: int, rem: int) -> tuple[int, int]:
    """(seconds, nanoseconds) as JuiceFS's parseAttr reads them (uint32 arithmetic)."""
    sec = _tdiv(us, 1_000_000)
    nsec = (((us - sec * 1_000_000) * 1000) & 0xFFFFFFFF) + (rem & 0xFFFFFFFF)
    return sec, nsec & 0xFFFFFFFF


def node_row(ino: int, a: Attr) -> tuple:
    at, atn = time_to_db(a.atime, a.atimensec)
    mt, mtn = time_to_db(a.mtime, a.mtimensec)
    ct, ctn = time_to_db(a.ctime, a.ctimensec)
    return (ino, a.typ, a.flags, a.mode, a.uid, a.gid, at, mt, ct, atn, mtn, ctn, a.nlink, a.length,
            a.rdev, a.parent, a.access_acl, a.default_acl, a.tier)


def attr_from_row(r: tuple | list) -> Attr:
    atime, atn = time_from_db(r[6], r[9] or 0)
    mtime, mtn = time_from_db(r[7], r[10] or 0)
    ctime, ctn = time_from_db(r[8], r[11] or 0)
    return Attr(typ=r[1], flags=r[2], mode=r[3], uid=r[4], gid=r[5], atime=atime, atimensec=atn,
                mtime=mtime, mtimensec=mtn, ctime=ctime, ctimensec=ctn, nlink=r[12], length=r[13],
                rdev=r[14] or 0, parent=r[15] or 0, access_acl=r[16] or 0, default_acl=r[17] or 0,
                tier=r[18] or 0)


def _b(v: Any) -> bytes:
    """A blob or text value as bytes (SQLite may hand back TEXT for blobs JuiceFS appended to)."""
    return v.encode("utf-8", "surrogateescape") if isinstance(v, str) else bytes(v)


def _s(v: Any) -> str:
    return v if isinstance(v, str) else bytes(v).decode("utf-8", "surrogateescape")


def _owner_db(owner: int) -> int:
    return owner - _U64 if owner >= 1 << 63 else owner


def _owner_py(owner: int) -> int:
    return owner + _U64 if owner < 0 else owner


class SQLTxn(Txn):
    """Typed reads and writes inside one database transaction (statements run immediately)."""

    def __init__(self, engine: "SQLEngine", cur: Any, readonly: bool) -> None:
        self._e = engine
        self._d: Dialect = engine.dialect
        self._cur = cur
        self._lock = "" if readonly else self._d.for_update
        self.counters: dict[str, int] = {}

    # --- plumbing ----------------------------------------------------------------------------
    def _x(self, sql: str, args: tuple | list = ()) -> Any:
        self._cur.execute(self._d.sql(sql), tuple(args))
        return self._cur

    def _one(self, sql: str, args: tuple | list = ()) -> tuple | None:
        return self._x(sql, args).fetchone()

    def _all(self, sql: str, args: tuple | list = ()) -> list:
        return list(self._x(sql, args).fetchall())

    def t(self, name: str) -> str:
        return self._d.t(name)

    # --- nodes ---------------------------------------------------------------------------------
    def get_attr(self, ino: int) -> Attr | None:
        r = self._one(f"SELECT {','.join(NODE_COLS)} FROM {self.t('node')} WHERE inode=?{self._lock}", (ino,))
        return attr_from_row(r) if r else None

    def get_attrs(self, inos: list[int]) -> list[Attr | None]:
        found: dict[int, Attr] = {}
        uniq = sorted(set(inos))  # sorted: rows are locked in one order, no deadlock between txns
        for i in range(0, len(uniq), 500):
            part = uniq[i:i + 500]
            rows = self._all(f"SELECT {','.join(NODE_COLS)} FROM {self.t('node')} WHERE inode IN "
                             f"({','.join('?' * len(part))}){self._lock}", part)
            for r in rows:
                found[r[0]] = attr_from_row(r)
        return [found.get(i) for i in inos]

    def set_attr(self, ino: int, attr: Attr) -> None:
        self._x(self._d.upsert("node", list(NODE_COLS), ["inode"]), node_row(ino, attr))

    def delete_attr(self, ino: int) -> None:
        self._x(f"DELETE FROM {self.t('node')} WHERE inode=?", (ino,))
        # a removed directory takes its usage record along, as JuiceFS's rmdir does
        self._x(f"DELETE FROM {self.t('dir_stats')} WHERE inode=?", (ino,))

    # --- directory entries -----------------------------------------------------------------------
    def get_entry(self, parent: int, name: bytes) -> tuple[int, int] | None:
        r = self._one(f"SELECT type, inode FROM {self.t('edge')} WHERE parent=? AND name=?{self._lock}",
                      (parent, bytes(name)))
        return (r[0], r[1]) if r else None

    def set_entry(self, parent: int, name: bytes, typ: int, ino: int) -> None:
        self._x(self._d.upsert("edge", ["parent", "name", "inode", "type"], ["parent", "name"]),
                (parent, bytes(name), ino, typ))

    def delete_entry(self, parent: int, name: bytes) -> None:
        self._x(f"DELETE FROM {self.t('edge')} WHERE parent=? AND name=?", (parent, bytes(name)))

    def list_entries(self, parent: int) -> list[tuple[bytes, int, int]]:
        rows = self._all(f"SELECT name, type, inode FROM {self.t('edge')} WHERE parent=? ORDER BY name", (parent,))
        return [(_b(r[0]), r[1], r[2]) for r in rows]

    def has_entries(self, parent: int) -> bool:
        return self._one(f"SELECT inode FROM {self.t('edge')} WHERE parent=? LIMIT 1{self._lock}", (parent,)) \
            is not None

    # --- parents: in SQL the edges themselves are the parent records -------------------------------
    def get_parents(self, ino: int) -> dict[int, int]:
        rows = self._all(f"SELECT parent, COUNT(*) FROM {self.t('edge')} WHERE inode=? GROUP BY parent", (ino,))
        return {r[0]: int(r[1]) for r in rows}

    def incr_parent(self, ino: int, parent: int, delta: int) -> None:
        """Nothing to store: get_parents counts the edges."""

    def delete_parents(self, ino: int) -> None:
        """Nothing to store: get_parents counts the edges."""

    # --- symlinks --------------------------------------------------------------------------------
    def get_symlink(self, ino: int) -> bytes | None:
        r = self._one(f"SELECT target FROM {self.t('symlink')} WHERE inode=?{self._lock}", (ino,))
        return _b(r[0]) if r else None

    def set_symlink(self, ino: int, target: bytes) -> None:
        self._x(self._d.upsert("symlink", ["inode", "target"], ["inode"]), (ino, bytes(target)))

    def delete_symlink(self, ino: int) -> None:
        self._x(f"DELETE FROM {self.t('symlink')} WHERE inode=?", (ino,))

    # --- xattrs (name is a text column in JuiceFS) ---------------------------------------------------
    @staticmethod
    def _xname(name: bytes) -> str:
        return bytes(name).decode("utf-8", "surrogateescape")

    def get_xattr(self, ino: int, name: bytes) -> bytes | None:
        r = self._one(f"SELECT value FROM {self.t('xattr')} WHERE inode=? AND name=?{self._lock}",
                      (ino, self._xname(name)))
        return _b(r[0]) if r else None

    def set_xattr(self, ino: int, name: bytes, value: bytes) -> None:
        self._x(self._d.upsert("xattr", ["inode", "name", "value"], ["inode", "name"]),
                (ino, self._xname(name), bytes(value)))

    def delete_xattr(self, ino: int, name: bytes) -> None:
        self._x(f"DELETE FROM {self.t('xattr')} WHERE inode=? AND name=?", (ino, self._xname(name)))

    def list_xattrs(self, ino: int) -> dict[bytes, bytes]:
        rows = self._all(f"SELECT name, value FROM {self.t('xattr')} WHERE inode=?", (ino,))
        return {_b(r[0]): _b(r[1]) for r in rows}

    def delete_xattrs(self, ino: int) -> None:
        self._x(f"DELETE FROM {self.t('xattr')} WHERE inode=?", (ino,))

    # --- chunks ----------------------------------------------------------------------------------
    def get_chunk(self, ino: int, indx: int) -> list[Slice]:
        r = self._one(f"SELECT slices FROM {self.t('chunk')} WHERE inode=? AND indx=?{self._lock}", (ino, indx))
        return codec.decode_slices(_b(r[0])) if r else []

    def _track(self, slices: list[Slice]) -> None:
        # a newly written slice gets a chunk_ref row with refs=1 (JuiceFS doWrite / compaction);
        # slices already tracked keep their count
        sql = self._d.upsert("chunk_ref", ["chunkid", "size", "refs"], ["chunkid"], ignore=True)
        for id_, size in sorted({(s.id, s.size) for s in slices if s.id}):
            self._x(sql, (id_, size, 1))

    def append_slice(self, ino: int, indx: int, s: Slice) -> None:
        self._x(self._d.upsert("chunk", ["inode", "indx", "slices"], ["inode", "indx"], {"slices": "concat"}),
                (ino, indx, codec.encode_slice(s)))
        self._track([s])

    def set_chunk(self, ino: int, indx: int, slices: list[Slice]) -> None:
        if not slices:
            self._x(f"DELETE FROM {self.t('chunk')} WHERE inode=? AND indx=?", (ino, indx))
            return
        buf = b"".join(codec.encode_slice(s) for s in slices)
        self._x(self._d.upsert("chunk", ["inode", "indx", "slices"], ["inode", "indx"]), (ino, indx, buf))
        self._track(slices)

    def chunk_indexes(self, ino: int) -> list[int]:
        return [r[0] for r in self._all(f"SELECT indx FROM {self.t('chunk')} WHERE inode=? ORDER BY indx", (ino,))]

    def incr_slice_ref(self, id_: int, size: int, delta: int) -> None:
        cur = self._x(f"UPDATE {self.t('chunk_ref')} SET refs=refs+? WHERE chunkid=? AND size=?", (delta, id_, size))
        if cur.rowcount == 0:  # an untracked slice has one reference
            sql = self._d.upsert("chunk_ref", ["chunkid", "size", "refs"], ["chunkid"], {"refs": "add"})
            self._x(sql, (id_, size, 1 + delta))

    # --- counters: added after the commit ------------------------------------------------------------
    def incr_counter(self, name: str, delta: int) -> None:
        self.counters[name] = self.counters.get(name, 0) + delta

    # --- deferred deletion, open files ---------------------------------------------------------------
    def add_delfile(self, ino: int, length: int, when: int) -> None:
        self._x(self._d.upsert("delfile", ["inode", "length", "expire"], ["inode"]), (ino, length, int(when)))

    def add_sustained(self, sid: int, ino: int) -> None:
        self._x(self._d.upsert("sustained", ["sid", "inode"], ["sid", "inode"]), (sid, ino))

    def delete_sustained(self, sid: int, ino: int) -> None:
        self._x(f"DELETE FROM {self.t('sustained')} WHERE sid=? AND inode=?", (sid, ino))

    # --- locks -----------------------------------------------------------------------------------
    def get_flocks(self, ino: int) -> dict[tuple[int, int], str]:
        rows = self._all(f"SELECT sid, owner, ltype FROM {self.t('flock')} WHERE inode=?{self._lock}", (ino,))
        return {(r[0], _owner_py(r[1])): chr(r[2]) for r in rows}

    def set_flock(self, ino: int, sid: int, owner: int, ltype: str) -> None:
        self._x(self._d.upsert("flock", ["inode", "sid", "owner", "ltype"], ["inode", "sid", "owner"]),
                (ino, sid, _owner_db(owner), ord(ltype)))

    def delete_flock(self, ino: int, sid: int, owner: int) -> None:
        self._x(f"DELETE FROM {self.t('flock')} WHERE inode=? AND sid=? AND owner=?", (ino, sid, _owner_db(owner)))

    def get_plocks(self, ino: int) -> dict[tuple[int, int], bytes]:
        rows = self._all(f"SELECT sid, owner, records FROM {self.t('plock')} WHERE inode=?{self._lock}", (ino,))
        return {(r[0], _owner_py(r[1])): _b(r[2]) for r in rows}

    def set_plock(self, ino: int, sid: int, owner: int, records: bytes) -> None:
        if not records:
            self._x(f"DELETE FROM {self.t('plock')} WHERE inode=? AND sid=? AND owner=?",
                    (ino, sid, _owner_db(owner)))
            return
        self._x(self._d.upsert("plock", ["inode", "sid", "owner", "records"], ["inode", "sid", "owner"]),
                (ino, sid, _owner_db(owner), bytes(records)))


class SQLEngine(Engine):
    """JuiceFS's SQL layout on SQLite, PostgreSQL or MySQL/MariaDB, chosen by the URL scheme."""

    def __init__(self, url: str, retries: int = 10) -> None:
        self.dialect = parse_url(url)
        self.name = self.dialect.name
        self.retries = max(0, retries)
        self._local = threading.local()
        self._conns: list[Any] = []
        self._lock = threading.Lock()
        self._connected_once = False
        self._pending: dict[str, int] = {}  # counter deltas committed but not yet added

    # --- connections -----------------------------------------------------------------------------
    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = self.dialect.connect()
            except UserError as e:
                if self._connected_once:  # it worked before: the server went away
                    raise TransientMetaError(str(e)) from None
                raise
            self._connected_once = True
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    def _drop_conn(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with self._lock:
                if conn in self._conns:
                    self._conns.remove(conn)
            try:
                conn.close()
            except Exception:  # already broken
                pass

    def _end(self, cur: Any, ok: bool) -> None:
        cur.execute("COMMIT" if ok else "ROLLBACK")

    def _wrap(self, e: BaseException, what: str) -> MetaError:
        return MetaError(f"{what} on {self.dialect.where()}: {str(e).strip().splitlines()[0] if str(e) else e!r}")

    # --- transactions --------------------------------------------------------------------------------
    def _run(self, fn: Callable[[SQLTxn], T], *, readonly: bool = False, read_committed: bool = False) -> T:
        last: BaseException | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(min(0.2, 0.002 * (2 ** attempt)) * random.uniform(0.5, 1.5))
            conn = self._conn()
            try:
                self.dialect.begin(conn, readonly=readonly, read_committed=read_committed)
            except Exception as e:
                kind = self.dialect.classify(e)
                if kind == CONN:  # a stale pooled connection: nothing ran yet, reconnect
                    self._drop_conn()
                    last = e
                    continue
                if kind == RETRY:
                    last = e
                    self._rollback_quietly(conn)
                    continue
                raise self._wrap(e, "cannot begin a transaction") from e
            cur = conn.cursor()
            txn = SQLTxn(self, cur, readonly)
            try:
                result = fn(txn)
                self._end(cur, True)
            except BaseException as e:
                self._rollback_quietly(conn)
                kind = self.dialect.classify(e)
                if kind == RETRY:
                    log.debug("transaction conflict (try %d): %s", attempt + 1, e)
                    last = e
                    continue
                if kind == CONN:
                    self._drop_conn()
                    raise TransientMetaError(f"lost the connection to {self.dialect.where()}: {e}") from e
                if self._is_db_error(e):
                    raise self._wrap(e, "metadata transaction failed") from e
                raise
            finally:
                try:
                    cur.close()
                except Exception:
                    pass
            if txn.counters:
                self._add_counters(txn.counters)
            return result
        raise TxnConflict(f"transaction on {self.dialect.where()} still conflicts after "
                          f"{self.retries + 1} tries: {last}")

    def _rollback_quietly(self, conn: Any) -> None:
        try:
            cur = conn.cursor()
            cur.execute("ROLLBACK")
            cur.close()
        except Exception:
            self._drop_conn()

    def _is_db_error(self, e: BaseException) -> bool:
        mod = type(e).__module__
        return mod.startswith(("sqlite3", "psycopg", "pymysql"))

    def txn(self, fn: Callable[[Txn], T], *, readonly: bool = False) -> T:
        return self._run(fn, readonly=readonly)

    def _autocommit(self, sql: str, args: tuple = ()) -> Any:
        conn = self._conn()
        cur = conn.cursor()
        try:
            if self.name == "sqlite3":  # a read txn may have left the connection query-only
                cur.execute("PRAGMA query_only = 0")
            cur.execute(self.dialect.sql(sql), args)
            return cur.fetchall() if cur.description else None
        finally:
            cur.close()

    # --- lifecycle ---------------------------------------------------------------------------------
    def ping(self) -> float:
        conn = self._conn()
        start = time.monotonic()
        try:
            cur = conn.cursor()
            cur.execute("SELECT 1")
            cur.fetchall()
            cur.close()
        except Exception as e:
            self._drop_conn()
            if self.dialect.classify(e) == CONN:
                raise TransientMetaError(f"lost the connection to {self.dialect.where()}: {e}") from e
            raise self._wrap(e, "ping failed") from e
        return time.monotonic() - start

    def init_schema(self) -> None:
        for stmt in create_statements(self.dialect.name, self.dialect.prefix):
            try:
                self._autocommit(stmt)
            except Exception as e:
                # two clients creating the same table at once: the loser's error is harmless
                low = str(e).lower()
                if "already exists" in low or "duplicate" in low:
                    continue
                raise self._wrap(e, "cannot create the JuiceFS tables") from e
        self._seed_counters()

    def _seed_counters(self) -> None:
        sql = self.dialect.upsert("counter", ["name", "value"], ["name"], ignore=True)

        def seed(tx: SQLTxn) -> None:
            for name, value in INITIAL_COUNTERS.items():
                tx._x(sql, (name, value))

        self._run(seed)

    def reset(self) -> None:
        """Empty every table, leaving the state init_schema() makes (seeded counters)."""
        self._pending.clear()
        for name in (*TABLE_NAMES, "session"):
            try:
                self._autocommit(f"DELETE FROM {self.dialect.t(name)}")
            except Exception as e:
                if not self.dialect.is_missing_table(e):
                    raise self._wrap(e, "cannot reset the database") from e
        self._seed_counters()

    def close(self) -> None:
        try:
            if self._pending:
                self._flush_counters()
        except Exception as e:  # the database is gone; nothing more to do
            log.warning("could not save volume counters: %s", e)
        with self._lock:
            conns, self._conns = self._conns, []
        for c in conns:
            try:
                c.close()
            except Exception:
                pass
        self._local = threading.local()

    # --- settings and counters -----------------------------------------------------------------------
    def load_setting(self) -> bytes | None:
        def get(tx: SQLTxn) -> bytes | None:
            r = tx._one(f"SELECT value FROM {tx.t('setting')} WHERE name=?", ("format",))
            return _b(r[0]) if r else None

        try:
            return self._run(get, readonly=True)
        except MetaError as e:
            if self.dialect.is_missing_table(e.__cause__ or e):
                return None
            raise

    def save_setting(self, value: bytes) -> None:
        text = bytes(value).decode()
        self._run(lambda tx: tx._x(self.dialect.upsert("setting", ["name", "value"], ["name"]), ("format", text)))

    def get_counter(self, name: str) -> int:
        if self._pending:
            self._flush_counters()
        r = self._run(lambda tx: tx._one(f"SELECT value FROM {tx.t('counter')} WHERE name=?", (name,)),
                      readonly=True)
        return int(r[0]) if r else 0

    def incr_counter(self, name: str, delta: int) -> int:
        def incr(tx: SQLTxn) -> int:
            r = tx._one(f"SELECT value FROM {tx.t('counter')} WHERE name=?{self.dialect.for_update}", (name,))
            if r is None:
                value = INITIAL_COUNTERS.get(name, 0) + delta
                tx._x(f"INSERT INTO {tx.t('counter')} (name, value) VALUES (?, ?)", (name, value))
                return value
            tx._x(f"UPDATE {tx.t('counter')} SET value=? WHERE name=?", (int(r[0]) + delta, name))
            return int(r[0]) + delta

        return self._run(incr, read_committed=True)

    def set_counter_if_small(self, name: str, value: int, diff: int) -> bool:
        def cas(tx: SQLTxn) -> bool:
            r = tx._one(f"SELECT value FROM {tx.t('counter')} WHERE name=?{self.dialect.for_update}", (name,))
            if r is not None and int(r[0]) > value - diff:  # JuiceFS setIfSmall
                return False
            tx._x(self.dialect.upsert("counter", ["name", "value"], ["name"]), (name, value))
            return True

        return self._run(cas, read_committed=True)

    def _add_counters(self, deltas: dict[str, int]) -> None:
        with self._lock:
            for k, v in deltas.items():
                self._pending[k] = self._pending.get(k, 0) + v
        try:
            self._flush_counters()
        except MetaError as e:  # kept in _pending and added with the next flush
            log.warning("could not update volume counters (will retry): %s", e)

    def _flush_counters(self) -> None:
        with self._lock:
            batch = {k: v for k, v in self._pending.items() if v}
            for k in batch:
                self._pending[k] -= batch[k]
        if not batch:
            return
        sql = self.dialect.upsert("counter", ["name", "value"], ["name"], {"value": "add"})

        def add(tx: SQLTxn) -> None:
            for k in sorted(batch):
                tx._x(sql, (k, batch[k]))

        try:
            self._run(add, read_committed=True)
        except BaseException:
            with self._lock:
                for k, v in batch.items():
                    self._pending[k] = self._pending.get(k, 0) + v
            raise

    # --- sessions ------------------------------------------------------------------------------------
    def save_session(self, sid: int, expire: float, info: bytes) -> None:
        self._run(lambda tx: tx._x(self.dialect.upsert("session2", ["sid", "expire", "info"], ["sid"]),
                                   (sid, int(expire), bytes(info))))

    def refresh_session(self, sid: int, expire: float) -> None:
        self._run(lambda tx: tx._x(f"UPDATE {tx.t('session2')} SET expire=? WHERE sid=?", (int(expire), sid)))

    def list_sessions(self) -> list[SessionRecord]:
        rows = self._run(lambda tx: tx._all(f"SELECT sid, expire, info FROM {tx.t('session2')} ORDER BY sid"),
                         readonly=True)
        return [SessionRecord(r[0], float(r[1]), _b(r[2]) if r[2] is not None else b"{}") for r in rows]

    def get_sustained(self, sid: int) -> list[int]:
        rows = self._run(lambda tx: tx._all(f"SELECT inode FROM {tx.t('sustained')} WHERE sid=? ORDER BY inode",
                                            (sid,)), readonly=True)
        return [r[0] for r in rows]

    def delete_session(self, sid: int) -> None:
        def rm(tx: SQLTxn) -> None:
            for table in ("flock", "plock", "sustained", "session2"):
                tx._x(f"DELETE FROM {tx.t(table)} WHERE sid=?", (sid,))

        self._run(rm)

    def list_session_locks(self, sid: int) -> tuple[list[int], list[int]]:
        def q(tx: SQLTxn) -> tuple[list[int], list[int]]:
            f = tx._all(f"SELECT DISTINCT inode FROM {tx.t('flock')} WHERE sid=? ORDER BY inode", (sid,))
            p = tx._all(f"SELECT DISTINCT inode FROM {tx.t('plock')} WHERE sid=? ORDER BY inode", (sid,))
            return [r[0] for r in f], [r[0] for r in p]

        return self._run(q, readonly=True)

    # --- deletion ------------------------------------------------------------------------------------
    def list_delfiles(self) -> list[DelFile]:
        rows = self._run(lambda tx: tx._all(f"SELECT inode, length, expire FROM {tx.t('delfile')} ORDER BY inode"),
                         readonly=True)
        return [DelFile(r[0], r[1], r[2]) for r in rows]

    def delete_delfile(self, ino: int) -> None:
        self._run(lambda tx: tx._x(f"DELETE FROM {tx.t('delfile')} WHERE inode=?", (ino,)))

    def delete_chunk(self, ino: int, indx: int) -> list[tuple[int, int]]:
        def rm(tx: SQLTxn) -> list[tuple[int, int]]:
            slices = tx.get_chunk(ino, indx)
            if not slices and tx._one(f"SELECT indx FROM {tx.t('chunk')} WHERE inode=? AND indx=?",
                                      (ino, indx)) is None:
                return []
            touched: list[tuple[int, int]] = []
            for s in slices:
                if s.id:
                    tx.incr_slice_ref(s.id, s.size, -1)
                    touched.append((s.id, s.size))
            tx._x(f"DELETE FROM {tx.t('chunk')} WHERE inode=? AND indx=?", (ino, indx))
            dead = []
            for id_, size in sorted(set(touched)):
                r = tx._one(f"SELECT refs FROM {tx.t('chunk_ref')} WHERE chunkid=?", (id_,))
                if r is not None and r[0] <= 0:
                    dead.append((id_, size))
                    # the caller deletes the objects; JuiceFS drops the row after that (a crash in
                    # between leaks objects, which `gc` finds, instead of leaving dangling rows)
                    tx._x(f"DELETE FROM {tx.t('chunk_ref')} WHERE chunkid=?", (id_,))
            return dead

        return self._run(rm)

    # --- directory statistics ------------------------------------------------------------------------
    def update_dir_stats(self, deltas: dict[int, tuple[int, int, int]]) -> None:
        items = sorted((k, v) for k, v in deltas.items() if any(v))
        if not items:
            return
        sql = self.dialect.upsert("dir_stats", ["inode", "data_length", "used_space", "used_inodes"], ["inode"],
                                  {"data_length": "add", "used_space": "add", "used_inodes": "add"})

        for i in range(0, len(items), 1000):  # JuiceFS's batch size

            def upd(tx: SQLTxn, part: list = items[i:i + 1000]) -> None:
                for ino, (length, space, inodes) in part:
                    tx._x(sql, (ino, length, space, inodes))

            self._run(upd, read_committed=True)

    def get_dir_stat(self, ino: int) -> tuple[int, int, int] | None:
        r = self._run(lambda tx: tx._one(f"SELECT data_length, used_space, used_inodes FROM {tx.t('dir_stats')} "
                                         f"WHERE inode=?", (ino,)), readonly=True)
        return (int(r[0]), int(r[1]), int(r[2])) if r else None
