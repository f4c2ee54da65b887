"""Optimistic transactions over one Redis connection: WATCH on read, MULTI/EXEC on commit.

Each read sends `WATCH <keys>` and the read command in one round trip (pipelined on the
transaction's own connection), so watching costs no extra latency. Writes are queued and sent
as MULTI ... EXEC when the function returns; EXEC answers nil when a watched key changed, and the
engine re-runs the function. We talk to the connection directly instead of through redis-py's
Pipeline so that a dropped connection is reported as such (redis-py turns it into WatchError).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import Any

from redis.exceptions import NoScriptError, ResponseError

from ..errors import MetaError
from . import codec
from .engine import Txn
from .redis_keys import Keys, delfile_member, owner_field, parse_owner_field, slice_field
from .types import Attr, Slice

log = logging.getLogger(__name__)

# HINCRBY that removes the field when the count drops to zero or below (parent link counts).
_INCR_PARENT_LUA = (
    "local v = redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2]) "
    "if v <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end return v"
)


_STALE_WATCH = "_pyjuicefs_stale_watch"

# JuiceFS's lookup script: an entry and its inode's attributes in one atomic round trip. The inode
# is decoded as a Lua number (a double): beyond 2^53 (trash entries) only the entry comes back
# and the attributes are read apart.
_LOOKUP_LUA = (
    "local v = redis.call('HGET', KEYS[1], ARGV[1]) "
    "if not v then return false end "
    "if string.len(v) ~= 9 or string.byte(v, 2) ~= 0 or string.byte(v, 3) >= 32 then return {v} end "
    "local ino = 0 "
    "for i = 2, 9 do ino = ino * 256 + string.byte(v, i) end "
    "return {v, redis.call('GET', ARGV[2] .. string.format('%.0f', ino))}"
)
_LOOKUP_SHA = hashlib.sha1(_LOOKUP_LUA.encode()).hexdigest()


class Scripts:
    """Lua scripts of one engine: EVALSHA, EVAL when the server does not know the script yet;
    turned off for good when the server refuses scripts (ACL, disabled commands)."""

    def __init__(self) -> None:
        self.enabled = True

    def lookup(self, conn: Any, entry_key: str, name: bytes, inode_prefix: str) -> Any:
        """The script's reply, or raises _NoScript (then read the usual way)."""
        args = (1, entry_key, name, inode_prefix)
        try:
            try:
                return roundtrip(conn, [("EVALSHA", _LOOKUP_SHA, *args)])[0]
            except ResponseError as e:
                if not isinstance(e, NoScriptError):
                    raise
            return roundtrip(conn, [("EVAL", _LOOKUP_LUA, *args)])[0]
        except ResponseError as e:
            self.enabled = False
            log.warning("redis refuses Lua scripts (%s): lookups take two round trips", e)
            raise _NoScript() from None


class _NoScript(Exception):
    pass


class ExecAborted(Exception):
    """EXEC returned nil: a watched key changed."""


def roundtrip(conn: Any, cmds: list[tuple], *, raise_errors: bool = True) -> list[Any]:
    """Send commands pipelined on `conn` and read every reply; raise the first error reply.

    A connection left with stale WATCHes by an earlier transaction (see RedisTxn.finish) gets an
    UNWATCH in front of the batch, so dropping them costs no round trip of its own."""
    dirty = getattr(conn, _STALE_WATCH, False)
    if dirty:
        cmds = [("UNWATCH",), *cmds]
        setattr(conn, _STALE_WATCH, False)  # a send error disconnects, which drops watches too
    conn.send_packed_command(conn.pack_commands(cmds))
    out: list[Any] = []
    first_err: ResponseError | None = None
    for _ in cmds:
        try:
            out.append(conn.read_response())
        except ResponseError as e:  # the connection stays usable: keep reading the replies
            first_err = first_err or e
            out.append(e)
    if first_err is not None and raise_errors:
        raise first_err
    return out[1:] if dirty else out


def pairs(flat: list[Any] | dict) -> dict[bytes, bytes]:
    """HGETALL reply (RESP2 flat list) as a dict."""
    if isinstance(flat, dict):
        return flat
    return {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}


def decode_chunk(items: list[bytes], key: str) -> list[Slice]:
    out = []
    for it in items:
        if len(it) != codec.SLICE_SIZE:
            raise MetaError(f"corrupt slice record of {len(it)} bytes in {key}")
        out.extend(codec.decode_slices(it))
    return out


class RedisTxn(Txn):
    """Reads run now (watching their keys); writes run at commit inside MULTI/EXEC."""

    def __init__(self, keys: Keys, conn: Any, *, readonly: bool = False, scripts: Scripts | None = None) -> None:
        self.k = keys
        self.conn = conn
        self.readonly = readonly
        self.scripts = scripts
        self.watched: set[str] = set()
        self.reads = 0  # read round trips
        self.writes: list[tuple] = []
        # callbacks fed with the EXEC reply of the write at the same index
        self.on_result: dict[int, Callable[[Any], None]] = {}

    # --- plumbing ------------------------------------------------------------------------
    def read_cmd(self, keys: list[str], *cmd: Any) -> Any:
        new = [k for k in dict.fromkeys(keys) if k not in self.watched]
        cmds: list[tuple] = [("WATCH", *new)] if new else []
        cmds.append(cmd)
        res = roundtrip(self.conn, cmds)
        self.watched.update(new)
        self.reads += 1
        return res[-1]

    def queue_cmd(self, *cmd: Any, on_result: Callable[[Any], None] | None = None) -> None:
        if on_result is not None:
            self.on_result[len(self.writes)] = on_result
        self.writes.append(cmd)

    def finish(self) -> None:
        """Apply queued writes atomically; raise ExecAborted when a watched key changed.

        Without writes: reads made in one round trip are consistent by themselves, so the
        watches are just left for the next user of the connection to drop; reads made in
        several round trips are checked with an empty MULTI/EXEC."""
        if not self.writes and self.reads <= 1:
            self.release_watches()
            return
        replies = roundtrip(self.conn, [("MULTI",), *self.writes, ("EXEC",)], raise_errors=False)
        self.watched.clear()  # EXEC (or EXECABORT) always drops the watches
        res = replies[-1]
        if isinstance(res, ResponseError):
            queued_err = next((r for r in replies[1:-1] if isinstance(r, ResponseError)), res)
            raise MetaError(f"redis transaction failed: {queued_err}")
        if res is None:
            raise ExecAborted()
        errs = [r for r in res if isinstance(r, ResponseError)]
        if errs:
            raise MetaError(f"redis transaction failed: {errs[0]}")
        for i, cb in self.on_result.items():
            cb(res[i])

    def release_watches(self) -> None:
        """Leave the connection to the pool; its watches are dropped by its next round trip."""
        if self.watched:
            setattr(self.conn, _STALE_WATCH, True)
            self.watched.clear()

    # --- nodes ---------------------------------------------------------------------------
    def get_attr(self, ino: int) -> Attr | None:
        key = self.k.inode(ino)
        buf = self.read_cmd([key], "GET", key)
        return None if buf is None else codec.decode_attr(buf)

    def get_many(self, *reads: tuple) -> list:
        """Every read in one round trip (each key watched in the same round trip)."""
        keys: list[str] = []
        cmds: list[tuple] = []
        for r in reads:
            if r[0] == "attr":
                key = self.k.inode(r[1])
                cmds.append(("GET", key))
            elif r[0] == "entry":
                key = self.k.entry(r[1])
                cmds.append(("HGET", key, r[2]))
            elif r[0] == "chunk":
                key = self.k.chunk(r[1], r[2])
                cmds.append(("LRANGE", key, 0, -1))
            else:
                raise ValueError(f"unknown read {r[0]!r}")
            keys.append(key)
        if not cmds:
            return []
        new = [k for k in dict.fromkeys(keys) if k not in self.watched]
        res = roundtrip(self.conn, ([("WATCH", *new)] if new else []) + cmds)[-len(cmds):]
        self.watched.update(new)
        self.reads += len(cmds)  # a pipeline is not atomic: finish() checks several reads
        out: list = []
        for r, key, v in zip(reads, keys, res):
            if r[0] == "attr":
                out.append(None if v is None else codec.decode_attr(v))
            elif r[0] == "entry":
                out.append(None if v is None else codec.decode_entry(v))
            else:
                out.append(decode_chunk(v, key))
        return out

    def lookup_entry(self, parent: int, name: bytes) -> tuple[int, int, Attr | None] | None:
        if not self.readonly or self.scripts is None or not self.scripts.enabled:
            return super().lookup_entry(parent, name)
        try:
            res = self.scripts.lookup(self.conn, self.k.entry(parent), name, self.k.inode(0)[:-1])
        except _NoScript:
            return super().lookup_entry(parent, name)
        self.reads += 1  # one atomic script: consistent by itself
        if res is None:
            return None
        typ, ino = codec.decode_entry(res[0])
        if len(res) < 2:  # an inode the script cannot name (>= 2^53)
            return typ, ino, self.get_attr(ino)
        return typ, ino, None if res[1] is None else codec.decode_attr(res[1])

    def get_attrs(self, inos: list[int]) -> list[Attr | None]:
        if not inos:
            return []
        keys = [self.k.inode(i) for i in inos]
        bufs = self.read_cmd(keys, "MGET", *keys)
        return [None if b is None else codec.decode_attr(b) for b in bufs]

    def set_attr(self, ino: int, attr: Attr) -> None:
        self.queue_cmd("SET", self.k.inode(ino), codec.encode_attr(attr))

    def delete_attr(self, ino: int) -> None:
        self.queue_cmd("DEL", self.k.inode(ino))

    # --- directory entries -------------------------------------------------------------------
    def get_entry(self, parent: int, name: bytes) -> tuple[int, int] | None:
        key = self.k.entry(parent)
        buf = self.read_cmd([key], "HGET", key, name)
        return None if buf is None else codec.decode_entry(buf)

    def set_entry(self, parent: int, name: bytes, typ: int, ino: int) -> None:
        self.queue_cmd("HSET", self.k.entry(parent), name, codec.encode_entry(typ, ino))

    def delete_entry(self, parent: int, name: bytes) -> None:
        self.queue_cmd("HDEL", self.k.entry(parent), name)

    def list_entries(self, parent: int) -> list[tuple[bytes, int, int]]:
        key = self.k.entry(parent)
        ents = pairs(self.read_cmd([key], "HGETALL", key))
        out = []
        for name in sorted(ents):  # sorted by name: stable across calls, unlike hash order
            typ, ino = codec.decode_entry(ents[name])
            out.append((name, typ, ino))
        return out

    def has_entries(self, parent: int) -> bool:
        key = self.k.entry(parent)
        return int(self.read_cmd([key], "HLEN", key)) > 0

    # --- parents of hard links --------------------------------------------------------------
    def get_parents(self, ino: int) -> dict[int, int]:
        key = self.k.parent(ino)
        raw = pairs(self.read_cmd([key], "HGETALL", key))
        out = {}
        for p, n in raw.items():
            cnt = int(n)
            if cnt > 0:  # JuiceFS leaves zero counts behind; they mean no link
                out[int(p)] = cnt
        return out

    def incr_parent(self, ino: int, parent: int, delta: int) -> None:
        self.queue_cmd("EVAL", _INCR_PARENT_LUA, 1, self.k.parent(ino), str(parent), delta)

    def delete_parents(self, ino: int) -> None:
        self.queue_cmd("DEL", self.k.parent(ino))

    # --- symlinks ------------------------------------------------------------------------------
    def get_symlink(self, ino: int) -> bytes | None:
        key = self.k.symlink(ino)
        return self.read_cmd([key], "GET", key)

    def set_symlink(self, ino: int, target: bytes) -> None:
        self.queue_cmd("SET", self.k.symlink(ino), target)

    def delete_symlink(self, ino: int) -> None:
        self.queue_cmd("DEL", self.k.symlink(ino))

    # --- xattrs --------------------------------------------------------------------------------
    def get_xattr(self, ino: int, name: bytes) -> bytes | None:
        key = self.k.xattr(ino)
        return self.read_cmd([key], "HGET", key, name)

    def set_xattr(self, ino: int, name: bytes, value: bytes) -> None:
        self.queue_cmd("HSET", self.k.xattr(ino), name, value)

    def delete_xattr(self, ino: int, name: bytes) -> None:
        self.queue_cmd("HDEL", self.k.xattr(ino), name)

    def list_xattrs(self, ino: int) -> dict[bytes, bytes]:
        key = self.k.xattr(ino)
        return pairs(self.read_cmd([key], "HGETALL", key))

    def delete_xattrs(self, ino: int) -> None:
        self.queue_cmd("DEL", self.k.xattr(ino))

    # --- chunks --------------------------------------------------------------------------------
    def get_chunk(self, ino: int, indx: int) -> list[Slice]:
        key = self.k.chunk(ino, indx)
        return decode_chunk(self.read_cmd([key], "LRANGE", key, 0, -1), key)

    def append_slice(self, ino: int, indx: int, s: Slice) -> None:
        self.queue_cmd("RPUSH", self.k.chunk(ino, indx), codec.encode_slice(s))

    def set_chunk(self, ino: int, indx: int, slices: list[Slice]) -> None:
        key = self.k.chunk(ino, indx)
        self.queue_cmd("DEL", key)
        if slices:
            self.queue_cmd("RPUSH", key, *[codec.encode_slice(s) for s in slices])

    def chunk_indexes(self, ino: int, upto: int | None = None) -> list[int]:
        """Indexes of the existing chunks of `ino`. Not watched: chunk keys that appear later
        belong to later writes.

        With `upto` (an optional hint beyond the Txn contract) only indexes below it are probed,
        with pipelined EXISTS, as JuiceFS walks a deleted file's chunks by its length. Without
        it Redis has no index by inode, so the whole keyspace is SCANned."""
        if upto is not None:
            found = []
            for lo in range(0, upto, 1000):
                idx = list(range(lo, min(upto, lo + 1000)))
                res = roundtrip(self.conn, [("EXISTS", self.k.chunk(ino, i)) for i in idx])
                found.extend(i for i, n in zip(idx, res) if int(n))
            return found
        pattern = self.k.chunk_pattern(ino)
        cut = len(pattern) - 1
        seen: set[int] = set()
        cursor: Any = 0
        while True:
            cursor, keys = roundtrip(self.conn, [("SCAN", cursor, "MATCH", pattern, "COUNT", 10000)])[0]
            for key in keys:
                try:
                    seen.add(int(key[cut:]))
                except ValueError:
                    pass
            if int(cursor) == 0:
                return sorted(seen)

    def incr_slice_ref(self, id_: int, size: int, delta: int) -> None:
        self.queue_cmd("HINCRBY", self.k.slice_refs, slice_field(id_, size), delta)

    # --- counters --------------------------------------------------------------------------------
    def incr_counter(self, name: str, delta: int) -> None:
        self.queue_cmd("INCRBY", self.k.counter(name), delta)

    # --- deferred deletion, open files -------------------------------------------------------------
    def add_delfile(self, ino: int, length: int, when: int) -> None:
        self.queue_cmd("ZADD", self.k.delfiles, when, delfile_member(ino, length))

    def add_sustained(self, sid: int, ino: int) -> None:
        self.queue_cmd("SADD", self.k.sustained(sid), str(ino))

    def delete_sustained(self, sid: int, ino: int) -> None:
        self.queue_cmd("SREM", self.k.sustained(sid), str(ino))

    # --- locks -------------------------------------------------------------------------------------
    def _get_locks(self, key: str) -> dict[tuple[int, int], bytes]:
        out = {}
        for f, v in pairs(self.read_cmd([key], "HGETALL", key)).items():
            owner = parse_owner_field(f)
            if owner is not None:
                out[owner] = v
        return out

    def _drop_lock(self, key: str, sid: int, owner: int) -> None:
        field = owner_field(sid, owner)
        fields = self.read_cmd([key], "HKEYS", key)
        mine = f"{sid}_".encode()
        self.queue_cmd("HDEL", key, field)
        # keep locked<sid> pointing at this inode while the session holds another lock on it
        if not any(f != field.encode() and f.startswith(mine) for f in fields):
            self.queue_cmd("SREM", self.k.locked(sid), key)

    def get_flocks(self, ino: int) -> dict[tuple[int, int], str]:
        return {o: v.decode() for o, v in self._get_locks(self.k.flock(ino)).items()}

    def set_flock(self, ino: int, sid: int, owner: int, ltype: str) -> None:
        key = self.k.flock(ino)
        self.queue_cmd("HSET", key, owner_field(sid, owner), ltype)
        self.queue_cmd("SADD", self.k.locked(sid), key)

    def delete_flock(self, ino: int, sid: int, owner: int) -> None:
        self._drop_lock(self.k.flock(ino), sid, owner)

    def get_plocks(self, ino: int) -> dict[tuple[int, int], bytes]:
        return self._get_locks(self.k.plock(ino))

    def set_plock(self, ino: int, sid: int, owner: int, records: bytes) -> None:
        key = self.k.plock(ino)
        if not records:
            self._drop_lock(key, sid, owner)
            return
        self.queue_cmd("HSET", key, owner_field(sid, owner), records)
        self.queue_cmd("SADD", self.k.locked(sid), key)
