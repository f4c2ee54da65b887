"""The Redis metadata engine: JuiceFS 1.4's Redis layout (pkg/meta/redis.go), key for key.

Keys (no prefix for a plain db): `setting`, `i<ino>` attributes, `d<ino>` entries, `p<ino>`
hard-link parents, `c<ino>_<indx>` slice lists, `s<ino>` symlinks, `x<ino>` xattrs,
`lockf<ino>`/`lockp<ino>` locks, `locked<sid>`, `session<sid>` (sustained inodes),
`allSessions`, `sessionInfos`, `delfiles`, `sliceRef`, counters, and the dir-stat hashes
`dirDataLength`/`dirUsedSpace`/`dirUsedInodes`. See redis_keys.py and redis_txn.py.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..errors import MetaError, PyJuiceFSError, TransientMetaError, TxnConflict, UserError
from . import redact_url
from .engine import DelFile, Engine, SessionRecord, Txn
from .types import CHUNK_SIZE
from .redis_keys import OFF_BY_ONE_COUNTERS, Keys, parse_delfile_member, slice_field
from .redis_txn import ExecAborted, RedisTxn, Scripts, decode_chunk
from .redis_url import parse_redis_url

T = TypeVar("T")
logger = logging.getLogger(__name__)

_AUTH_MARKERS = ("WRONGPASS", "NOAUTH", "invalid password", "invalid username-password")


class RedisEngine(Engine):
    name = "redis"

    def __init__(self, url: str, retries: int = 10) -> None:
        self.url = url
        self.safe_url = redact_url(url)
        self.addr = parse_redis_url(url)
        self.retries = max(1, retries)
        self.k = Keys("")
        # redis-py's own retries would hide failures and multiply timeouts: the caller retries
        self.client = redis.Redis(**self.addr.client_kwargs(), retry=Retry(NoBackoff(), 0))
        self.pool = self.client.connection_pool
        # transactions get their own pool: a connection may come back from one still WATCHing
        # keys (dropped lazily, see RedisTxn.finish), which must never reach a plain MULTI/EXEC
        self.txn_pool = redis.Redis(**self.addr.client_kwargs(), retry=Retry(NoBackoff(), 0)).connection_pool
        self.scripts = Scripts()

    # --- errors ----------------------------------------------------------------------------
    def _map_error(self, e: Exception) -> PyJuiceFSError:
        msg = str(e)
        where = f"redis {self.addr.where}"
        if "without any password configured" in msg:
            return UserError(f"{where}: a password was given but the server requires none "
                             "(drop it from the URL / META_PASSWORD)")
        if isinstance(e, redis.AuthenticationError) or any(m in msg for m in _AUTH_MARKERS):
            return UserError(f"{where}: authentication failed (wrong password or no such user) for {self.safe_url}")
        if "DB index is out of range" in msg or "invalid DB index" in msg:
            return UserError(f"{where}: database {self.addr.db} does not exist (DB index is out of range)")
        if isinstance(e, (redis.ConnectionError, redis.TimeoutError)):
            return TransientMetaError(f"{where}: {msg}")
        if "NOPERM" in msg:
            return UserError(f"{where}: permission denied: {msg}")
        return MetaError(f"{where}: {msg}")

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except redis.RedisError as e:
            raise self._map_error(e) from None

    def _txn_conn(self) -> Any:
        try:
            return self.txn_pool.get_connection()
        except TypeError:  # redis-py < 5.3 wants a command name
            return self.txn_pool.get_connection("MULTI")

    # --- transactions -------------------------------------------------------------------------
    def txn(self, fn: Callable[[Txn], T], *, readonly: bool = False) -> T:
        for attempt in range(self.retries):
            with self._errors():
                conn = self._txn_conn()
            tx = RedisTxn(self.k, conn, readonly=readonly, scripts=self.scripts)
            try:
                result = fn(tx)
                tx.finish()
                return result
            except ExecAborted:
                logger.debug("redis transaction conflict, retrying (try %d)", attempt + 1)
            except redis.RedisError as e:
                raise self._map_error(e) from None
            finally:
                tx.release_watches()  # after an error in fn: no round trip spent on UNWATCH
                self.txn_pool.release(conn)
            # like JuiceFS: sleep a random few ms, growing with the attempt
            time.sleep(random.random() * (attempt + 1) ** 2 / 1000)
        raise TxnConflict(f"redis transaction still conflicting after {self.retries} tries")

    # --- lifecycle ------------------------------------------------------------------------------
    def ping(self) -> float:
        start = time.monotonic()
        try:
            self.client.ping()
            elapsed = time.monotonic() - start
            info = self.client.info("cluster")
        except redis.RedisError as e:
            err = self._map_error(e)
            if isinstance(err, TransientMetaError):
                raise UserError(f"cannot connect to {self.safe_url}: {e}") from None
            raise err from None
        if str(info.get("cluster_enabled", "0")) == "1":
            raise UserError(f"{self.safe_url} is a Redis Cluster node; Redis Cluster is not supported yet")
        return elapsed

    def reset(self) -> None:
        # JuiceFS's Reset flushes the db when keys carry no prefix: the db holds one volume
        with self._errors():
            self.client.flushdb()

    def close(self) -> None:
        self.pool.disconnect()
        self.txn_pool.disconnect()

    def warnings(self) -> list[str]:
        """JuiceFS's checkServerConfig: keys must never be evicted; try to fix the policy."""
        try:
            info = self.client.info("memory")
            server = self.client.info("server")
        except redis.RedisError:
            return []
        policy = str(info.get("maxmemory_policy", ""))
        if "storage_provider" in server or "storage_provider" in info or not policy or policy == "noeviction":
            return []
        out = [f"maxmemory_policy is {policy!r},  we will try to reconfigure it to 'noeviction'."]
        try:
            self.client.config_set("maxmemory-policy", "noeviction")
            now = self.client.config_get("maxmemory-policy").get("maxmemory-policy")
            if now not in (None, "noeviction", b"noeviction"):
                out.append(f"reconfigured maxmemory-policy to 'noeviction', but it's still {now}")
        except redis.RedisError as e:  # CONFIG may be renamed or forbidden
            out.append(f"try to reconfigure maxmemory-policy to 'noeviction' failed: {e}")
        return out

    # --- settings and counters --------------------------------------------------------------------
    def load_setting(self) -> bytes | None:
        with self._errors():
            return self.client.get(self.k.setting)

    def save_setting(self, value: bytes) -> None:
        with self._errors():
            self.client.set(self.k.setting, value)

    def get_counter(self, name: str) -> int:
        with self._errors():
            v = self.client.get(self.k.counter(name))
        n = int(v) if v is not None else 0
        # Redis keeps the last id handed out; report the next one, as SQL/TKV store it
        return n + 1 if name in OFF_BY_ONE_COUNTERS else n

    def incr_counter(self, name: str, delta: int) -> int:
        with self._errors():
            v = int(self.client.incrby(self.k.counter(name), delta))
        return v + 1 if name in OFF_BY_ONE_COUNTERS else v

    def set_counter_if_small(self, name: str, value: int, diff: int) -> bool:
        key = self.k.counter(name)
        off = 1 if name in OFF_BY_ONE_COUNTERS else 0
        changed = False

        def fn(tx: Txn) -> None:
            nonlocal changed
            assert isinstance(tx, RedisTxn)
            old = tx.read_cmd([key], "GET", key)
            old_v = (int(old) if old is not None else 0) + off
            changed = not old_v > value - diff
            if changed:
                tx.queue_cmd("SET", key, value - off)

        self.txn(fn)
        return changed

    # --- sessions -------------------------------------------------------------------------------------
    def save_session(self, sid: int, expire: float, info: bytes) -> None:
        with self._errors():
            pipe = self.client.pipeline(transaction=True)
            pipe.zadd(self.k.all_sessions, {str(sid): int(expire)})
            pipe.hset(self.k.session_infos, str(sid), info)
            pipe.execute()

    def refresh_session(self, sid: int, expire: float) -> None:
        with self._errors():
            self.client.zadd(self.k.all_sessions, {str(sid): int(expire)})

    def list_sessions(self) -> list[SessionRecord]:
        with self._errors():
            rows = self.client.zrange(self.k.all_sessions, 0, -1, withscores=True)
            if not rows:
                return []
            infos = self.client.hmget(self.k.session_infos, [m for m, _ in rows])
        # a legacy client wrote no info: JuiceFS reads it as an empty object
        return [SessionRecord(int(m), float(s), info if info is not None else b"{}")
                for (m, s), info in zip(rows, infos)]

    def get_sustained(self, sid: int) -> list[int]:
        with self._errors():
            return sorted(int(i) for i in self.client.smembers(self.k.sustained(sid)))

    def delete_session(self, sid: int) -> None:
        locked = self.k.locked(sid)
        mine = f"{sid}_".encode()
        with self._errors():
            lock_keys = self.client.smembers(locked)
            owned = {}
            for lk in lock_keys:
                fields = [f for f in self.client.hkeys(lk) if f.startswith(mine)]
                if fields:
                    owned[lk] = fields
            pipe = self.client.pipeline(transaction=True)
            for lk, fields in owned.items():
                pipe.hdel(lk, *fields)
            pipe.delete(locked, self.k.sustained(sid))
            pipe.hdel(self.k.session_infos, str(sid))
            pipe.zrem(self.k.all_sessions, str(sid))
            pipe.execute()

    def list_session_locks(self, sid: int) -> tuple[list[int], list[int]]:
        with self._errors():
            members = self.client.smembers(self.k.locked(sid))
        flocks, plocks = [], []
        for m in members:
            parsed = self.k.lock_inode(m.decode())
            if parsed is not None:
                (flocks if parsed[0] else plocks).append(parsed[1])
        return sorted(flocks), sorted(plocks)

    # --- deletion --------------------------------------------------------------------------------------
    def list_delfiles(self) -> list[DelFile]:
        with self._errors():
            rows = self.client.zrange(self.k.delfiles, 0, -1, withscores=True)
        out = []
        for member, score in rows:
            parsed = parse_delfile_member(member)
            if parsed is not None:
                out.append(DelFile(parsed[0], parsed[1], int(score)))
        return out

    def file_chunk_indexes(self, ino: int, length: int) -> list[int]:
        """Chunks of a deleted file, probed by its length in one pipelined round trip per 1000
        indexes, as JuiceFS's Redis engine deletes file data. SCANning the whole keyspace per
        deleted file (the Txn contract's chunk_indexes) would cost O(all keys) per unlink. Chunk 0
        is always probed (a file truncated to 0 keeps it); as in JuiceFS, other chunks left beyond
        a file's final length by a shrinking truncate are not seen."""
        n = max(1, -(-length // CHUNK_SIZE))
        if n == 1:
            return [0]  # no probe: delete_chunk of a missing chunk finds nothing and does nothing

        def fn(tx: Txn) -> list[int]:
            assert isinstance(tx, RedisTxn)
            return tx.chunk_indexes(ino, upto=n)

        return self.txn(fn, readonly=True)

    def delete_delfile_exact(self, ino: int, length: int) -> None:
        """Remove the delfile record `<ino>:<length>` (one round trip; JuiceFS removes it so);
        falls back to a scan for the inode's records when that member is not there."""
        with self._errors():
            if self.client.zrem(self.k.delfiles, f"{ino}:{length}"):
                return
        self.delete_delfile(ino)

    def delete_delfile(self, ino: int) -> None:
        with self._errors():
            members = [m for m, _ in self.client.zscan_iter(self.k.delfiles, match=f"{ino}:*", count=1000)]
            if members:
                self.client.zrem(self.k.delfiles, *members)

    def delete_chunk(self, ino: int, indx: int) -> list[tuple[int, int]]:
        key = self.k.chunk(ino, indx)
        freed: list[tuple[int, int]] = []

        def fn(tx: Txn) -> None:
            assert isinstance(tx, RedisTxn)
            freed.clear()
            slices = decode_chunk(tx.read_cmd([key], "LRANGE", key, 0, -1), key)
            if not slices:
                return
            tx.queue_cmd("DEL", key)
            for s in slices:
                if s.id > 0:
                    # a slice without a sliceRef field has exactly one reference: -1 frees it
                    def check(refs: Any, s: Any = s) -> None:
                        if int(refs) < 0 and (s.id, s.size) not in freed:
                            freed.append((s.id, s.size))
                    tx.queue_cmd("HINCRBY", self.k.slice_refs, slice_field(s.id, s.size), -1, on_result=check)

        self.txn(fn)
        return list(freed)

    # --- directory statistics -------------------------------------------------------------------------
    def update_dir_stats(self, deltas: dict[int, tuple[int, int, int]]) -> None:
        if not deltas:
            return
        hashes = (self.k.dir_data_length, self.k.dir_used_space, self.k.dir_used_inodes)
        with self._errors():
            pipe = self.client.pipeline(transaction=True)
            for ino, values in deltas.items():
                for h, v in zip(hashes, values):
                    # by 0 too: that records a new directory as JuiceFS's mkdir does ("0")
                    pipe.hincrby(h, str(ino), v)
            pipe.execute()

    def get_dir_stat(self, ino: int) -> tuple[int, int, int] | None:
        field = str(ino)
        with self._errors():
            pipe = self.client.pipeline(transaction=False)
            pipe.hget(self.k.dir_data_length, field)
            pipe.hget(self.k.dir_used_space, field)
            pipe.hget(self.k.dir_used_inodes, field)
            length, space, inodes = pipe.execute()
        if length is None or space is None or inodes is None:
            return None
        return int(length), int(space), int(inodes)

    # --- helpers for tools and tests ------------------------------------------------------------------
    def raw_keys(self) -> list[bytes]:
        """Every key of the volume (diagnostics, layout tests)."""
        with self._errors():
            return sorted(self.client.scan_iter(match=self.k.prefix + "*", count=10000))


__all__ = ["RedisEngine"]
