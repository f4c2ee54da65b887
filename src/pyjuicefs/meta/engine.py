"""The contract between the POSIX rules (meta/base.py) and a metadata engine.

An engine stores JuiceFS 1.4's layout for its kind of database (Redis keys, SQL tables, TKV keys)
and offers two things:

* `Txn`: typed reads and writes of single records (a node's attributes, one directory entry, one
  chunk...) that run inside `Engine.txn(fn)`. The engine makes `fn` atomic and isolated —
  optimistically (Redis WATCH/MULTI, TKV) or with database transactions (SQL) — and re-runs it on
  a conflict, so `fn` must have no side effects besides its Txn calls. Writes inside a txn may be
  buffered: a read after a write of the same record in one txn is not guaranteed to see it, so
  base.py reads first, then writes.
* Engine-level operations that do not fit a transaction: settings, id allocation, sessions,
  deleting a chunk with its slice references, directory statistics.

Counter names are JuiceFS's base names ("nextInode", "nextChunk", "nextSession", "usedSpace",
"totalInodes", "nextTrash", "nextCleanupSlices", "lastCleanupSessions", "lastCleanupFiles",
"lastCleanupTrash"); each engine maps them to its own keys as JuiceFS does.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from .types import Attr, Slice

T = TypeVar("T")


@dataclass(slots=True)
class SessionRecord:
    sid: int
    expire: float  # unix seconds; a session whose expire is in the past is stale
    info: bytes  # SessionInfo JSON as JuiceFS writes it


@dataclass(slots=True)
class DelFile:
    inode: int
    length: int
    expire: int  # unix seconds at which it was scheduled for deletion


class Txn(ABC):
    """Typed record access inside one transaction. Names are bytes; inodes and ids are ints."""

    # --- nodes -------------------------------------------------------------------------
    @abstractmethod
    def get_attr(self, ino: int) -> Attr | None: ...

    def get_attrs(self, inos: list[int]) -> list[Attr | None]:
        """Batch read (readdir plus); engines override with one round trip."""
        return [self.get_attr(i) for i in inos]

    def get_many(self, *reads: tuple) -> list:
        """Independent reads at once, answers in order: ("attr", ino) -> Attr | None,
        ("entry", parent, name) -> (type, inode) | None, ("chunk", ino, indx) -> list[Slice].
        Engines override with one round trip; this default reads them one after another."""
        out: list = []
        for r in reads:
            if r[0] == "attr":
                out.append(self.get_attr(r[1]))
            elif r[0] == "entry":
                out.append(self.get_entry(r[1], r[2]))
            elif r[0] == "chunk":
                out.append(self.get_chunk(r[1], r[2]))
            else:
                raise ValueError(f"unknown read {r[0]!r}")
        return out

    def lookup_entry(self, parent: int, name: bytes) -> tuple[int, int, Attr | None] | None:
        """(type, inode, its attributes or None) of an entry, or None if there is none. Engines
        may override it with one round trip (JuiceFS's Redis lookup script)."""
        found = self.get_entry(parent, name)
        if found is None:
            return None
        return found[0], found[1], self.get_attr(found[1])

    @abstractmethod
    def set_attr(self, ino: int, attr: Attr) -> None: ...

    @abstractmethod
    def delete_attr(self, ino: int) -> None: ...

    # --- directory entries --------------------------------------------------------------
    @abstractmethod
    def get_entry(self, parent: int, name: bytes) -> tuple[int, int] | None:
        """(type, inode) of `name` in `parent`, or None."""

    @abstractmethod
    def set_entry(self, parent: int, name: bytes, typ: int, ino: int) -> None: ...

    @abstractmethod
    def delete_entry(self, parent: int, name: bytes) -> None: ...

    @abstractmethod
    def list_entries(self, parent: int) -> list[tuple[bytes, int, int]]:
        """All (name, type, inode) of a directory, in the engine's stable order."""

    @abstractmethod
    def has_entries(self, parent: int) -> bool: ...

    # --- parents of hard-linked files (attr.parent == 0) ----------------------------------
    @abstractmethod
    def get_parents(self, ino: int) -> dict[int, int]:
        """parent inode -> number of links from it."""

    @abstractmethod
    def incr_parent(self, ino: int, parent: int, delta: int) -> None:
        """Add delta links from parent; a count that reaches 0 is removed."""

    @abstractmethod
    def delete_parents(self, ino: int) -> None: ...

    # --- symlinks --------------------------------------------------------------------------
    @abstractmethod
    def get_symlink(self, ino: int) -> bytes | None: ...

    @abstractmethod
    def set_symlink(self, ino: int, target: bytes) -> None: ...

    @abstractmethod
    def delete_symlink(self, ino: int) -> None: ...

    # --- xattrs ----------------------------------------------------------------------------
    @abstractmethod
    def get_xattr(self, ino: int, name: bytes) -> bytes | None: ...

    @abstractmethod
    def set_xattr(self, ino: int, name: bytes, value: bytes) -> None: ...

    @abstractmethod
    def delete_xattr(self, ino: int, name: bytes) -> None: ...

    @abstractmethod
    def list_xattrs(self, ino: int) -> dict[bytes, bytes]: ...

    @abstractmethod
    def delete_xattrs(self, ino: int) -> None: ...

    # --- chunks ----------------------------------------------------------------------------
    @abstractmethod
    def get_chunk(self, ino: int, indx: int) -> list[Slice]: ...

    @abstractmethod
    def append_slice(self, ino: int, indx: int, s: Slice) -> None: ...

    @abstractmethod
    def set_chunk(self, ino: int, indx: int, slices: list[Slice]) -> None:
        """Replace a chunk's slice list (compaction, truncate); an empty list deletes it."""

    @abstractmethod
    def chunk_indexes(self, ino: int) -> list[int]: ...

    @abstractmethod
    def incr_slice_ref(self, id_: int, size: int, delta: int) -> None:
        """A slice gained (delta>0: clone, copy_file_range) or lost references beyond its first."""

    # --- counters --------------------------------------------------------------------------
    @abstractmethod
    def incr_counter(self, name: str, delta: int) -> None:
        """Buffered increment (usedSpace, totalInodes…); read values with Engine.get_counter."""

    # --- deferred deletion, open files -------------------------------------------------------
    @abstractmethod
    def add_delfile(self, ino: int, length: int, when: int) -> None:
        """Schedule the data of an unlinked inode for deletion."""

    @abstractmethod
    def add_sustained(self, sid: int, ino: int) -> None:
        """Session `sid` keeps unlinked inode `ino` open."""

    @abstractmethod
    def delete_sustained(self, sid: int, ino: int) -> None: ...

    # --- locks (JuiceFS owner ids; records as JuiceFS encodes them) --------------------------
    @abstractmethod
    def get_flocks(self, ino: int) -> dict[tuple[int, int], str]:
        """(sid, owner) -> 'R' or 'W'."""

    @abstractmethod
    def set_flock(self, ino: int, sid: int, owner: int, ltype: str) -> None: ...

    @abstractmethod
    def delete_flock(self, ino: int, sid: int, owner: int) -> None: ...

    @abstractmethod
    def get_plocks(self, ino: int) -> dict[tuple[int, int], bytes]:
        """(sid, owner) -> encoded lock records (codec.encode_plock_records)."""

    @abstractmethod
    def set_plock(self, ino: int, sid: int, owner: int, records: bytes) -> None:
        """Empty records delete the entry."""


class Engine(ABC):
    """A metadata database holding one volume in JuiceFS 1.4's layout."""

    #: scheme name as in the URL, e.g. "redis", "sqlite3", "postgres", "mysql", "etcd", "memkv"
    name: str = ""

    @abstractmethod
    def txn(self, fn: Callable[[Txn], T], *, readonly: bool = False) -> T:
        """Run fn atomically; re-run it on a conflict (with backoff), at most `retries` times."""

    # --- lifecycle ---------------------------------------------------------------------------
    @abstractmethod
    def ping(self) -> float:
        """Round trip to the database in seconds; raises a MetaError (or UserError with a clear
        message: wrong password, unreachable host…) when the database cannot be used."""

    def init_schema(self) -> None:
        """Create tables/indexes if the engine has any (SQL); called by format before anything."""

    @abstractmethod
    def reset(self) -> None:
        """Delete every record of the volume (format --force on a used database, tests)."""

    @abstractmethod
    def close(self) -> None: ...

    def warnings(self) -> list[str]:
        """Things an operator should fix, logged by format/mount (Redis maxmemory-policy…)."""
        return []

    # --- settings and counters ------------------------------------------------------------------
    @abstractmethod
    def load_setting(self) -> bytes | None:
        """The volume's Format JSON, or None when not formatted."""

    @abstractmethod
    def save_setting(self, value: bytes) -> None: ...

    @abstractmethod
    def get_counter(self, name: str) -> int: ...

    @abstractmethod
    def incr_counter(self, name: str, delta: int) -> int:
        """Atomic increment outside a txn; returns the new value (id allocation)."""

    @abstractmethod
    def set_counter_if_small(self, name: str, value: int, diff: int) -> bool:
        """Set counter to value if current value + diff < value (JuiceFS setIfSmall, cleanups)."""

    # --- sessions ---------------------------------------------------------------------------------
    @abstractmethod
    def save_session(self, sid: int, expire: float, info: bytes) -> None:
        """Create or refresh a session record."""

    @abstractmethod
    def refresh_session(self, sid: int, expire: float) -> None: ...

    @abstractmethod
    def list_sessions(self) -> list[SessionRecord]: ...

    @abstractmethod
    def get_sustained(self, sid: int) -> list[int]: ...

    @abstractmethod
    def delete_session(self, sid: int) -> None:
        """Remove a session and its sustained inodes and locks (callers release what those held)."""

    @abstractmethod
    def list_session_locks(self, sid: int) -> tuple[list[int], list[int]]:
        """(inodes with flocks, inodes with plocks) held by session `sid`."""

    # --- deletion ----------------------------------------------------------------------------
    @abstractmethod
    def list_delfiles(self) -> list[DelFile]: ...

    @abstractmethod
    def delete_delfile(self, ino: int) -> None: ...

    @abstractmethod
    def delete_chunk(self, ino: int, indx: int) -> list[tuple[int, int]]:
        """Remove one chunk and drop one reference from each of its slices; return the
        (id, size) of slices no longer referenced, whose objects the caller deletes."""

    # --- directory statistics (JuiceFS DirStats) ---------------------------------------------
    @abstractmethod
    def update_dir_stats(self, deltas: dict[int, tuple[int, int, int]]) -> None:
        """inode -> (length delta, space delta, inodes delta), applied atomically per inode."""

    @abstractmethod
    def get_dir_stat(self, ino: int) -> tuple[int, int, int] | None:
        """(length, space, inodes) of a directory's direct children, or None if never recorded."""
