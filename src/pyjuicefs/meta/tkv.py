"""The TKV metadata engine: JuiceFS 1.4's key layout over a tiny transactional KV client.

Key layout (pkg/meta/tkv.go). Inodes inside keys are 8 bytes LITTLE-endian; every other integer
in a key (chunk index, slice id/size, session id, length, timestamps) is BIG-endian.

  setting                      volume settings JSON
  C<name>                      counter: int64 little-endian, except the cleanup timestamps set by
                               setIfSmall (lastCleanup*, nextCleanupSlices): int64 big-endian
  A<ino>I                      attributes
  A<ino>D<name>                directory entry: type u8 | inode u64 BE
  A<ino>P<parent ino>          parent link count of a hard-linked file (counter, LE)
  A<ino>C<indx u32>            chunk: concatenated 24-byte slice records
  A<ino>S                      symlink target
  A<ino>X<name>                xattr
  D<ino><length u64>           deleted file (value: int64 BE unix seconds)
  F<ino> / P<ino>              flocks / POSIX locks
  K<slice id u64><size u32>    extra references of a slice (counter, LE)
  L<ts u64><slice id u64>      delayed slices (trash)
  SE<sid> / SH<sid> / SI<sid>  session expire (int64 BE seconds) / legacy heartbeat / info JSON
  SS<sid><ino>                 sustained inode
  U<ino>                       directory statistics (length, space, inodes: 3 x int64 BE)
"""

from __future__ import annotations

import logging
import random
import struct
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from typing import TypeVar

from ..errors import TxnConflict
from . import codec
from .engine import DelFile, Engine, SessionRecord, Txn
from .types import TYPE_FILE, Attr, Slice

logger = logging.getLogger(__name__)
T = TypeVar("T")

# Counters written by setIfSmall are big-endian timestamps; the rest are little-endian.
_TIMESTAMP_COUNTERS = {"lastCleanupSessions", "lastCleanupFiles", "lastCleanupTrash", "nextCleanupSlices"}
_I64_LE = struct.Struct("<q")
_I64_BE = struct.Struct(">q")


def next_key(key: bytes) -> bytes:
    """The smallest key greater than every key with prefix `key`."""
    b = bytearray(key)
    for i in range(len(b) - 1, -1, -1):
        if b[i] < 0xFF:
            b[i] += 1
            return bytes(b[: i + 1])
    return b"\xff" * (len(key) + 1)


def pack_counter(v: int) -> bytes:
    return _I64_LE.pack(v)


def parse_counter(buf: bytes | None) -> int:
    if not buf:
        return 0
    if len(buf) != 8:
        raise ValueError(f"invalid counter value of {len(buf)} bytes")
    return _I64_LE.unpack(buf)[0]


def pack_i64(v: int) -> bytes:
    return _I64_BE.pack(v)


def parse_i64(buf: bytes | None) -> int:
    if not buf:
        return 0
    if len(buf) != 8:
        raise ValueError(f"invalid int64 value of {len(buf)} bytes")
    return _I64_BE.unpack(buf)[0]


# --- keys ------------------------------------------------------------------------------------


def ino_bytes(ino: int) -> bytes:
    return ino.to_bytes(8, "little")


def ino_of(buf: bytes) -> int:
    return int.from_bytes(buf[:8], "little")


def inode_key(ino: int) -> bytes:
    return b"A" + ino_bytes(ino) + b"I"


def entry_key(parent: int, name: bytes) -> bytes:
    return b"A" + ino_bytes(parent) + b"D" + name


def parent_key(ino: int, parent: int) -> bytes:
    return b"A" + ino_bytes(ino) + b"P" + ino_bytes(parent)


def chunk_key(ino: int, indx: int) -> bytes:
    return b"A" + ino_bytes(ino) + b"C" + indx.to_bytes(4, "big")


def sym_key(ino: int) -> bytes:
    return b"A" + ino_bytes(ino) + b"S"


def xattr_key(ino: int, name: bytes) -> bytes:
    return b"A" + ino_bytes(ino) + b"X" + name


def slice_key(id_: int, size: int) -> bytes:
    return b"K" + id_.to_bytes(8, "big") + size.to_bytes(4, "big")


def delfile_key(ino: int, length: int) -> bytes:
    return b"D" + ino_bytes(ino) + length.to_bytes(8, "big")


def flock_key(ino: int) -> bytes:
    return b"F" + ino_bytes(ino)


def plock_key(ino: int) -> bytes:
    return b"P" + ino_bytes(ino)


def session_key(sid: int) -> bytes:
    return b"SE" + sid.to_bytes(8, "big")


def legacy_session_key(sid: int) -> bytes:
    return b"SH" + sid.to_bytes(8, "big")


def session_info_key(sid: int) -> bytes:
    return b"SI" + sid.to_bytes(8, "big")


def sustained_key(sid: int, ino: int) -> bytes:
    return b"SS" + sid.to_bytes(8, "big") + ino_bytes(ino)


def dir_stat_key(ino: int) -> bytes:
    return b"U" + ino_bytes(ino)


def counter_key(name: str) -> bytes:
    return b"C" + name.encode()


SETTING_KEY = b"setting"


# --- lock values -----------------------------------------------------------------------------


def decode_flocks(buf: bytes | None) -> dict[tuple[int, int], str]:
    out: dict[tuple[int, int], str] = {}
    if not buf:
        return out
    for i in range(0, len(buf) - len(buf) % 17, 17):
        sid, owner = struct.unpack_from(">QQ", buf, i)
        out[(sid, owner)] = chr(buf[i + 16])
    return out


def encode_flocks(ls: dict[tuple[int, int], str]) -> bytes:
    return b"".join(struct.pack(">QQB", sid, owner, ord(t)) for (sid, owner), t in ls.items())


def decode_plocks(buf: bytes | None) -> dict[tuple[int, int], bytes]:
    out: dict[tuple[int, int], bytes] = {}
    if not buf:
        return out
    i = 0
    while i + 20 <= len(buf):
        sid, owner, n = struct.unpack_from(">QQI", buf, i)
        i += 20
        out[(sid, owner)] = bytes(buf[i : i + n])
        i += n
    return out


def encode_plocks(ls: dict[tuple[int, int], bytes]) -> bytes:
    return b"".join(struct.pack(">QQI", sid, owner, len(r)) + r for (sid, owner), r in ls.items())


# --- the KV client contract ----------------------------------------------------------------------


class KVTxn(ABC):
    """One optimistic transaction. Writes are buffered and visible to later reads of this txn."""

    def __init__(self) -> None:
        self.writes: dict[bytes, bytes | None] = {}

    @abstractmethod
    def _get(self, key: bytes) -> bytes | None:
        """Read from the store (recording what the commit must validate)."""

    @abstractmethod
    def _scan(self, begin: bytes, end: bytes) -> list[tuple[bytes, bytes]]:
        """Sorted (key, value) pairs of the store in [begin, end), recorded for validation."""

    def get(self, key: bytes) -> bytes | None:
        if key in self.writes:
            return self.writes[key]
        return self._get(key)

    def gets(self, *keys: bytes) -> list[bytes | None]:
        return [self.get(k) for k in keys]

    def scan(self, begin: bytes, end: bytes, limit: int = -1) -> Iterator[tuple[bytes, bytes]]:
        """Sorted (key, value) pairs in [begin, end), including this txn's own writes."""
        items = dict(self._scan(begin, end))
        for k, v in self.writes.items():
            if begin <= k < end:
                if v is None:
                    items.pop(k, None)
                else:
                    items[k] = v
        n = 0
        for k in sorted(items):
            if 0 <= limit <= n:
                return
            n += 1
            yield k, items[k]

    def scan_prefix(self, prefix: bytes, limit: int = -1) -> Iterator[tuple[bytes, bytes]]:
        return self.scan(prefix, next_key(prefix), limit)

    def exist(self, prefix: bytes) -> bool:
        return any(True for _ in self.scan_prefix(prefix, 1))

    def set(self, key: bytes, value: bytes) -> None:
        self.writes[key] = bytes(value)

    def delete(self, key: bytes) -> None:
        self.writes[key] = None

    def delete_prefix(self, prefix: bytes) -> None:
        for k, _ in list(self.scan_prefix(prefix)):
            self.delete(k)

    def incr_by(self, key: bytes, delta: int) -> int:
        """Add delta to a little-endian int64 counter; returns the new value."""
        v = parse_counter(self.get(key)) + delta
        if delta:
            self.set(key, pack_counter(v))
        return v


class KVClient(ABC):
    """A transactional ordered key-value store (memkv, etcd...)."""

    name: str = ""

    def txn(self, fn: Callable[[KVTxn], T], retries: int = 50) -> T:
        """Run fn in a transaction; re-run it on TxnConflict with growing random backoff."""
        last: Exception | None = None
        for i in range(max(1, retries)):
            try:
                return self._txn_once(fn)
            except TxnConflict as e:
                last = e
                logger.debug("conflicted transaction, restart it (tried %d): %s", i + 1, e)
                time.sleep(random.random() * 0.001 * (i + 1) * (i + 1))
        assert last is not None
        raise last

    @abstractmethod
    def _txn_once(self, fn: Callable[[KVTxn], T]) -> T:
        """Run fn once and commit; raise TxnConflict when another commit invalidated its reads."""

    @abstractmethod
    def reset(self, prefix: bytes = b"") -> None:
        """Delete every key starting with prefix."""

    def close(self) -> None:
        pass


# --- the engine ----------------------------------------------------------------------------------


class TKVTxn(Txn):
    """engine.Txn over a KVTxn. Volume counters are buffered and applied after the commit (as
    JuiceFS does) so that concurrent creates do not all conflict on `CusedSpace`."""

    def __init__(self, tx: KVTxn) -> None:
        self.tx = tx
        self.counters: dict[str, int] = {}

    # nodes
    def get_attr(self, ino: int) -> Attr | None:
        v = self.tx.get(inode_key(ino))
        return codec.decode_attr(v) if v is not None else None

    def get_attrs(self, inos: list[int]) -> list[Attr | None]:
        vals = self.tx.gets(*[inode_key(i) for i in inos])
        return [codec.decode_attr(v) if v is not None else None for v in vals]

    def set_attr(self, ino: int, attr: Attr) -> None:
        self.tx.set(inode_key(ino), codec.encode_attr(attr))

    def delete_attr(self, ino: int) -> None:
        self.tx.delete(inode_key(ino))

    # entries
    def get_entry(self, parent: int, name: bytes) -> tuple[int, int] | None:
        v = self.tx.get(entry_key(parent, name))
        return codec.decode_entry(v) if v is not None else None

    def set_entry(self, parent: int, name: bytes, typ: int, ino: int) -> None:
        self.tx.set(entry_key(parent, name), codec.encode_entry(typ, ino))

    def delete_entry(self, parent: int, name: bytes) -> None:
        self.tx.delete(entry_key(parent, name))

    def list_entries(self, parent: int) -> list[tuple[bytes, int, int]]:
        prefix = entry_key(parent, b"")
        out = []
        for k, v in self.tx.scan_prefix(prefix):
            name = k[len(prefix):]
            if not name:
                logger.error("corrupt entry with empty name in directory %d", parent)
                continue
            typ, ino = codec.decode_entry(v)
            out.append((name, typ, ino))
        return out

    def has_entries(self, parent: int) -> bool:
        return self.tx.exist(entry_key(parent, b""))

    # parents
    def get_parents(self, ino: int) -> dict[int, int]:
        prefix = b"A" + ino_bytes(ino) + b"P"
        out = {}
        for k, v in self.tx.scan_prefix(prefix):
            if len(k) == 18 and (n := parse_counter(v)) > 0:
                out[ino_of(k[10:])] = n
        return out

    def incr_parent(self, ino: int, parent: int, delta: int) -> None:
        key = parent_key(ino, parent)
        if self.tx.incr_by(key, delta) <= 0:
            self.tx.delete(key)

    def delete_parents(self, ino: int) -> None:
        self.tx.delete_prefix(b"A" + ino_bytes(ino) + b"P")

    # symlinks
    def get_symlink(self, ino: int) -> bytes | None:
        return self.tx.get(sym_key(ino))

    def set_symlink(self, ino: int, target: bytes) -> None:
        self.tx.set(sym_key(ino), target)

    def delete_symlink(self, ino: int) -> None:
        self.tx.delete(sym_key(ino))

    # xattrs
    def get_xattr(self, ino: int, name: bytes) -> bytes | None:
        return self.tx.get(xattr_key(ino, name))

    def set_xattr(self, ino: int, name: bytes, value: bytes) -> None:
        self.tx.set(xattr_key(ino, name), value)

    def delete_xattr(self, ino: int, name: bytes) -> None:
        self.tx.delete(xattr_key(ino, name))

    def list_xattrs(self, ino: int) -> dict[bytes, bytes]:
        prefix = xattr_key(ino, b"")
        return {k[len(prefix):]: v for k, v in self.tx.scan_prefix(prefix)}

    def delete_xattrs(self, ino: int) -> None:
        self.tx.delete_prefix(xattr_key(ino, b""))

    # chunks
    def get_chunk(self, ino: int, indx: int) -> list[Slice]:
        v = self.tx.get(chunk_key(ino, indx))
        return codec.decode_slices(v) if v else []

    def append_slice(self, ino: int, indx: int, s: Slice) -> None:
        key = chunk_key(ino, indx)
        self.tx.set(key, (self.tx.get(key) or b"") + codec.encode_slice(s))

    def set_chunk(self, ino: int, indx: int, slices: list[Slice]) -> None:
        key = chunk_key(ino, indx)
        if slices:
            self.tx.set(key, b"".join(codec.encode_slice(s) for s in slices))
        else:
            self.tx.delete(key)

    def chunk_indexes(self, ino: int) -> list[int]:
        prefix = b"A" + ino_bytes(ino) + b"C"
        return [int.from_bytes(k[10:], "big") for k, _ in self.tx.scan_prefix(prefix) if len(k) == 14]

    def incr_slice_ref(self, id_: int, size: int, delta: int) -> None:
        if id_:
            self.tx.incr_by(slice_key(id_, size), delta)

    # counters
    def incr_counter(self, name: str, delta: int) -> None:
        if delta:
            self.counters[name] = self.counters.get(name, 0) + delta

    # deletion, sustained
    def add_delfile(self, ino: int, length: int, when: int) -> None:
        self.tx.set(delfile_key(ino, length), pack_i64(int(when)))

    def add_sustained(self, sid: int, ino: int) -> None:
        self.tx.set(sustained_key(sid, ino), b"\x01")

    def delete_sustained(self, sid: int, ino: int) -> None:
        self.tx.delete(sustained_key(sid, ino))

    # locks
    def get_flocks(self, ino: int) -> dict[tuple[int, int], str]:
        return decode_flocks(self.tx.get(flock_key(ino)))

    def set_flock(self, ino: int, sid: int, owner: int, ltype: str) -> None:
        ls = self.get_flocks(ino)
        ls[(sid, owner)] = ltype
        self.tx.set(flock_key(ino), encode_flocks(ls))

    def delete_flock(self, ino: int, sid: int, owner: int) -> None:
        ls = self.get_flocks(ino)
        if ls.pop((sid, owner), None) is None:
            return
        if ls:
            self.tx.set(flock_key(ino), encode_flocks(ls))
        else:
            self.tx.delete(flock_key(ino))

    def get_plocks(self, ino: int) -> dict[tuple[int, int], bytes]:
        return decode_plocks(self.tx.get(plock_key(ino)))

    def set_plock(self, ino: int, sid: int, owner: int, records: bytes) -> None:
        ls = self.get_plocks(ino)
        if records:
            ls[(sid, owner)] = records
        else:
            ls.pop((sid, owner), None)
        if ls:
            self.tx.set(plock_key(ino), encode_plocks(ls))
        else:
            self.tx.delete(plock_key(ino))


class TKVEngine(Engine):
    """engine.Engine over a KVClient, with JuiceFS's TKV key layout."""

    def __init__(self, client: KVClient, retries: int = 10) -> None:
        self.client = client
        self.name = client.name
        self.retries = retries

    # --- transactions ---------------------------------------------------------------------------
    def txn(self, fn: Callable[[Txn], T], *, readonly: bool = False) -> T:
        box: list[TKVTxn] = []

        def body(tx: KVTxn) -> T:
            t = TKVTxn(tx)
            box[:] = [t]
            return fn(t)

        result = self.client.txn(body, retries=max(self.retries, 50))
        if box and box[0].counters:
            self._apply_counters(box[0].counters)
        return result

    def _apply_counters(self, deltas: dict[str, int]) -> None:
        def body(tx: KVTxn) -> None:
            for name, d in deltas.items():
                tx.incr_by(counter_key(name), d)

        self.client.txn(body)

    def _kv(self, fn: Callable[[KVTxn], T]) -> T:
        return self.client.txn(fn)

    def _get(self, key: bytes) -> bytes | None:
        return self._kv(lambda tx: tx.get(key))

    def _scan_prefix(self, prefix: bytes) -> list[tuple[bytes, bytes]]:
        return self._kv(lambda tx: list(tx.scan_prefix(prefix)))

    # --- lifecycle ------------------------------------------------------------------------------
    def ping(self) -> float:
        start = time.monotonic()
        self._get(SETTING_KEY)
        return time.monotonic() - start

    def reset(self) -> None:
        self.client.reset(b"")

    def close(self) -> None:
        self.client.close()

    # --- settings and counters ------------------------------------------------------------------
    def load_setting(self) -> bytes | None:
        return self._get(SETTING_KEY)

    def save_setting(self, value: bytes) -> None:
        self._kv(lambda tx: tx.set(SETTING_KEY, value))

    def get_counter(self, name: str) -> int:
        v = self._get(counter_key(name))
        return parse_i64(v) if name in _TIMESTAMP_COUNTERS else parse_counter(v)

    def incr_counter(self, name: str, delta: int) -> int:
        return self._kv(lambda tx: tx.incr_by(counter_key(name), delta))

    def set_counter_if_small(self, name: str, value: int, diff: int) -> bool:
        key = counter_key(name)

        def body(tx: KVTxn) -> bool:
            if parse_i64(tx.get(key)) > value - diff:
                return False
            tx.set(key, pack_i64(value))
            return True

        return self._kv(body)

    # --- sessions -------------------------------------------------------------------------------
    def save_session(self, sid: int, expire: float, info: bytes) -> None:
        def body(tx: KVTxn) -> None:
            tx.set(session_key(sid), pack_i64(int(expire)))
            tx.set(session_info_key(sid), info)

        self._kv(body)

    def refresh_session(self, sid: int, expire: float) -> None:
        self._kv(lambda tx: tx.set(session_key(sid), pack_i64(int(expire))))

    def list_sessions(self) -> list[SessionRecord]:
        def body(tx: KVTxn) -> list[SessionRecord]:
            out = []
            for prefix, extra in ((b"SE", 0), (b"SH", 300)):  # legacy heartbeats expire 5 min later
                for k, v in tx.scan_prefix(prefix):
                    if len(k) != 10:
                        continue
                    sid = int.from_bytes(k[2:], "big")
                    info = tx.get(session_info_key(sid)) or b"{}"
                    out.append(SessionRecord(sid, float(parse_i64(v) + extra), info))
            return out

        return self._kv(body)

    def get_sustained(self, sid: int) -> list[int]:
        prefix = b"SS" + sid.to_bytes(8, "big")
        return [ino_of(k[10:]) for k, _ in self._scan_prefix(prefix) if len(k) == 18]

    def delete_session(self, sid: int) -> None:
        def body(tx: KVTxn) -> None:
            for key in (session_key(sid), legacy_session_key(sid), session_info_key(sid)):
                tx.delete(key)
            tx.delete_prefix(b"SS" + sid.to_bytes(8, "big"))

        self._kv(body)
        flocks, plocks = self.list_session_locks(sid)
        for ino in flocks:
            self.txn(lambda t, ino=ino: [t.delete_flock(ino, s, o) for s, o in t.get_flocks(ino) if s == sid])
        for ino in plocks:
            self.txn(lambda t, ino=ino: [t.set_plock(ino, s, o, b"") for s, o in t.get_plocks(ino) if s == sid])

    def list_session_locks(self, sid: int) -> tuple[list[int], list[int]]:
        flocks = [ino_of(k[1:]) for k, v in self._scan_prefix(b"F")
                  if len(k) == 9 and any(s == sid for s, _ in decode_flocks(v))]
        plocks = [ino_of(k[1:]) for k, v in self._scan_prefix(b"P")
                  if len(k) == 9 and any(s == sid for s, _ in decode_plocks(v))]
        return flocks, plocks

    # --- deletion -------------------------------------------------------------------------------
    def list_delfiles(self) -> list[DelFile]:
        out = []
        for k, v in self._scan_prefix(b"D"):
            if len(k) == 17 and len(v) == 8:
                out.append(DelFile(ino_of(k[1:9]), int.from_bytes(k[9:], "big"), parse_i64(v)))
        return out

    def delete_delfile(self, ino: int) -> None:
        self._kv(lambda tx: tx.delete_prefix(b"D" + ino_bytes(ino)))

    def delete_chunk(self, ino: int, indx: int) -> list[tuple[int, int]]:
        key = chunk_key(ino, indx)

        def body(tx: KVTxn) -> list[tuple[int, int]]:
            buf = tx.get(key)
            tx.delete(key)
            try:
                slices = codec.decode_slices(buf or b"")
            except ValueError:
                logger.error("corrupt value for inode %d chunk %d; use `gc` to clean leaked slices", ino, indx)
                return []
            todel = []
            for s in slices:
                if s.id and tx.incr_by(slice_key(s.id, s.size), -1) < 0:
                    tx.delete(slice_key(s.id, s.size))
                    todel.append((s.id, s.size))
            return todel

        return self._kv(body)

    # --- directory statistics ---------------------------------------------------------------------
    def update_dir_stats(self, deltas: dict[int, tuple[int, int, int]]) -> None:
        def body(tx: KVTxn, part: dict[int, tuple[int, int, int]]) -> None:
            for ino, (dl, ds, di) in part.items():
                key = dir_stat_key(ino)
                raw = tx.get(key)
                if raw is not None and len(raw) == 24:
                    length, space, inodes = codec.decode_dir_stat(raw)
                    length, space, inodes = length + dl, space + ds, inodes + di
                    if min(length, space, inodes) >= 0:
                        tx.set(key, codec.encode_dir_stat(length, space, inodes))
                        continue
                    logger.warning("dir stat of inode %d is invalid, recalculate it", ino)
                # missing or broken: recalculate from the children (this change included)
                if tx.get(inode_key(ino)) is None:
                    continue
                tx.set(key, codec.encode_dir_stat(*self._calc_dir_stat(tx, ino)))

        items = list(deltas.items())
        for i in range(0, len(items), 20):  # batches of 20 inodes, as JuiceFS
            part = dict(items[i:i + 20])
            self._kv(lambda tx, part=part: body(tx, part))

    def get_dir_stat(self, ino: int) -> tuple[int, int, int] | None:
        raw = self._get(dir_stat_key(ino))
        return codec.decode_dir_stat(raw) if raw is not None and len(raw) == 24 else None

    @staticmethod
    def _calc_dir_stat(tx: KVTxn, ino: int) -> tuple[int, int, int]:
        length = space = inodes = 0
        prefix = entry_key(ino, b"")
        for _, v in tx.scan_prefix(prefix):
            typ, child = codec.decode_entry(v)
            inodes += 1
            size = 0
            if typ == TYPE_FILE:
                raw = tx.get(inode_key(child))
                if raw is not None:
                    size = codec.decode_attr(raw).length
            length += size
            space += codec.align4k(size)
        return length, space, inodes
