"""The metadata API used by the FUSE layer and the CLI: POSIX rules written once, over any Engine.

The operations are split by role: base_ns.py (namespace), base_attr.py (setattr, xattrs),
base_data.py (chunks, open files,
deletion, trash), base_lock.py (flock and POSIX locks), base_session.py (sessions). This module
holds the core: volume init/load, statfs, id allocation, quota checks, statistics and retries.

Semantics follow JuiceFS 1.4 (pkg/meta/base.go and the engines), including its counters: every
node costs 4 KiB of usedSpace plus its length rounded up to 4 KiB, and one of totalInodes.
"""

from __future__ import annotations

import errno
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from .. import metrics
from ..errors import FsError, NotFormatted, TransientMetaError, UserError
from ..format import Format
from .base_common import (
    ROOT_CTX,
    Context,
    MetaConfig,
    StatFS,
    access_mode,
    err,
    now_ts,
    stamp,
    volume_statfs,
)
from .base_attr import AttrOps
from .base_data import DataOps
from .base_lock import LockOps
from .base_ns import NamespaceOps
from .base_session import SessionOps
from .engine import Engine, Txn
from .types import ROOT_INODE, TRASH_INODE, TYPE_DIRECTORY, Attr

logger = logging.getLogger(__name__)
T = TypeVar("T")

INODE_BATCH = 1 << 10
SLICE_ID_BATCH = 4 << 10
NEW_VOLUME_MIN_CLIENT = "1.1.0-A"

__all__ = ["Meta", "MetaConfig", "Context", "ROOT_CTX", "StatFS"]


class Meta(NamespaceOps, AttrOps, DataOps, LockOps, SessionOps):
    """One client of a volume. Thread-safe: callers may run operations from many threads."""

    def __init__(self, engine: Engine, conf: MetaConfig | None = None) -> None:
        self.engine = engine
        self.conf = conf or MetaConfig()
        self.fmt: Format | None = None
        self.sid = 0
        self.root = ROOT_INODE
        #: called with (slice id, size) when a slice is no longer referenced (wired to the chunk store)
        self.on_delete_slice: Callable[[int, int], None] | None = None
        self._lock = threading.Lock()  # guards the fields below
        self._free_inodes = (0, 0)  # [next, max)
        self._free_slices = (0, 0)
        self._open: dict[int, int] = {}  # inode -> open count
        self._removed: set[int] = set()  # unlinked while open: delete on last close
        self._dir_stats: dict[int, list[int]] = {}
        self._dir_stats_flushed = time.monotonic()
        self._subtrash: tuple[str, int] = ("", 0)
        self._used = (0, 0)  # (usedSpace, totalInodes) as last read for quota checks

    # --- format ------------------------------------------------------------------------------
    def init(self, fmt: Format, force: bool = False) -> None:
        """Create the volume (or update its settings) as `juicefs format` does."""
        self.engine.init_schema()
        fmt = fmt.copy()
        body = self.engine.load_setting()
        if body:
            old = Format.from_json(body)
            if force:
                logger.warning("existing volume will be overwritten: %s", old)
            else:
                for label, name in (("name", "Name"), ("block size", "BlockSize"), ("compression", "Compression"),
                                    ("shards", "Shards"), ("hash prefix", "HashPrefix"),
                                    ("meta version", "MetaVersion")):
                    a, b = getattr(old, name), getattr(fmt, name)
                    if a != b:
                        raise UserError(f"cannot update volume {label} from {_gofmt(a)} to {_gofmt(b)}")
                if fmt.UUID != old.UUID:  # secrets are keyed by the UUID, which cannot change
                    fmt.decrypt()
                    fmt.UUID = old.UUID
        else:
            fmt.MetaVersion = fmt.MetaVersion or 1
            fmt.MinClientVersion = fmt.MinClientVersion or NEW_VOLUME_MIN_CLIENT
            fmt.DirStats = True
        plain = fmt.copy()
        fmt.encrypt()
        self.engine.save_setting(fmt.to_json())
        plain.decrypt()
        self.fmt = plain

        now = now_ts()

        def create_nodes(tx: Txn) -> None:
            if fmt.TrashDays > 0 and tx.get_attr(TRASH_INODE) is None:
                tx.set_attr(TRASH_INODE, _dir_attr(0o555, now))
            if tx.get_attr(ROOT_INODE) is None:
                tx.set_attr(ROOT_INODE, _dir_attr(0o777, now))

        self.engine.txn(create_nodes)
        for name, least in (("nextInode", 2), ("nextChunk", 1)):
            cur = self.engine.get_counter(name)
            if cur < least:
                self.engine.incr_counter(name, least - cur)

    def load(self, check_version: bool = True) -> Format:
        body = self.engine.load_setting()
        if not body:
            raise NotFormatted("database is not formatted, please run `juicefs format ...` first")
        f = Format.from_json(body)
        f.decrypt()
        if check_version:
            f.check_version()
        self.fmt = f
        if self.conf.subdir and self.root == ROOT_INODE:
            self.chroot(ROOT_CTX, self.conf.subdir)
        return f.copy()

    def get_format(self) -> Format:
        return self._format().copy()

    def _format(self) -> Format:
        if self.fmt is None:
            self.load()
        assert self.fmt is not None
        return self.fmt

    def chroot(self, ctx: Context, subdir: str) -> None:
        """Use `subdir` (created when missing, unless read-only) as the root of this client."""
        for part in subdir.strip("/").split("/"):
            if not part:
                continue
            try:
                ino, attr = self.lookup(ctx, self.root, part)
            except FsError as e:
                if e.errno != errno.ENOENT or self.conf.read_only:
                    raise
                ino, attr = self.mkdir(ctx, self.root, part, 0o777)
            if attr.typ != TYPE_DIRECTORY:
                raise err(errno.ENOTDIR)
            self.root = ino

    def _check_root(self, ino: int) -> int:
        if ino == 0:
            return ROOT_INODE
        if ino == ROOT_INODE:
            return self.root
        return ino

    # --- transactions ---------------------------------------------------------------------------
    def _txn(self, fn: Callable[[Txn], T], readonly: bool = False) -> T:
        """Run fn in an engine transaction; retry transient failures `conf.retries` times."""
        if self.conf.read_only and not readonly:
            raise err(errno.EROFS)
        t0 = time.perf_counter()
        try:
            for i in range(max(1, self.conf.retries) + 1):
                try:
                    return self.engine.txn(fn, readonly=readonly)
                except TransientMetaError as e:
                    if i >= self.conf.retries:
                        raise FsError(errno.EIO, f"metadata engine: {e}") from e
                    logger.warning("transient metadata error (try %d): %s", i + 1, e)
                    metrics.txn_restart(_txn_caller(fn))
                    time.sleep(min(1.0, 0.01 * (2**i)) * (0.5 + random.random()))
            raise AssertionError("unreachable")
        finally:
            metrics.txn(time.perf_counter() - t0)  # juicefs_transaction_durations_histogram_seconds

    # --- ids -------------------------------------------------------------------------------------
    def _next_inode(self) -> int:
        with self._lock:
            nxt, mx = self._free_inodes
            if nxt >= mx:
                v = self.engine.incr_counter("nextInode", INODE_BATCH)
                nxt, mx = v - INODE_BATCH, v
            while nxt <= 1:
                nxt += 1
            self._free_inodes = (nxt + 1, mx)
            return nxt

    def new_slice(self) -> int:
        """A new slice id, from batches of the nextChunk counter."""
        if self.conf.read_only:
            raise err(errno.EROFS)
        with self._lock:
            nxt, mx = self._free_slices
            if nxt >= mx:
                v = self.engine.incr_counter("nextChunk", SLICE_ID_BATCH)
                nxt, mx = v - SLICE_ID_BATCH, v
            self._free_slices = (nxt + 1, mx)
            return nxt

    # --- usage ------------------------------------------------------------------------------------
    def _load_usage(self) -> None:
        """Read the volume usage that _check_quota compares with (only when limits are set)."""
        f = self._format()
        if f.Capacity > 0 or f.Inodes > 0:
            used = (self.engine.get_counter("usedSpace"), self.engine.get_counter("totalInodes"))
            with self._lock:
                self._used = used

    def _check_quota(self, space: int, inodes: int) -> None:
        """ENOSPC when the volume's capacity or inode limit would be exceeded (no I/O: safe
        inside transactions; _load_usage refreshes the usage first)."""
        f = self._format()
        used_space, used_inodes = self._used
        if space > 0 and f.Capacity > 0 and used_space + space > f.Capacity:
            raise err(errno.ENOSPC)
        if inodes > 0 and f.Inodes > 0 and used_inodes + inodes > f.Inodes:
            raise err(errno.ENOSPC)

    def statfs(self, ctx: Context = ROOT_CTX, ino: int = ROOT_INODE) -> StatFS:
        f = self._format()
        return volume_statfs(f.Capacity, f.Inodes, self.engine.get_counter("usedSpace"),
                             self.engine.get_counter("totalInodes"))

    def _update_dir_stat(self, ino: int, length: int, space: int, inodes: int) -> None:
        if not self._format().DirStats:
            return
        with self._lock:
            st = self._dir_stats.setdefault(ino, [0, 0, 0])
            st[0] += length
            st[1] += space
            st[2] += inodes
        self._maybe_flush_dir_stats()

    def _update_parent_stats(self, ino: int, parent: int, length: int, space: int) -> None:
        """Dir statistics of the parent(s) of a file whose length changed."""
        if (length == 0 and space == 0) or not self._format().DirStats:
            return
        parents = [parent] if parent > 0 else list(self.get_parents(ino))
        for p in parents:
            self._update_dir_stat(p, length, space, 0)

    def _maybe_flush_dir_stats(self) -> None:
        if time.monotonic() - self._dir_stats_flushed >= self.conf.dir_stat_flush_period:
            self.flush_stats()

    def flush_stats(self) -> None:
        """Write buffered directory statistics to the engine."""
        with self._lock:
            stats, self._dir_stats = self._dir_stats, {}
            self._dir_stats_flushed = time.monotonic()
        if stats and not self.conf.read_only:
            try:
                self.engine.update_dir_stats({k: (v[0], v[1], v[2]) for k, v in stats.items()})
            except TransientMetaError as e:
                logger.warning("update directory statistics: %s", e)

    def get_dir_stat(self, ino: int) -> tuple[int, int, int] | None:
        """(length, space, inodes) of a directory's children, as recorded."""
        self.flush_stats()
        return self.engine.get_dir_stat(self._check_root(ino))

    def counters(self) -> dict[str, int]:
        """usedSpace and totalInodes of the volume."""
        return {n: self.engine.get_counter(n) for n in ("usedSpace", "totalInodes")}

    # --- attributes and permissions ---------------------------------------------------------------
    def access(self, ctx: Context, ino: int, mask: int, attr: Attr | None = None) -> None:
        """EACCES unless ctx may access `ino` with mask (R=4, W=2, X=1)."""
        if ctx.uid == 0 or not ctx.check_permission:
            return
        if attr is None:
            attr = self.getattr(ino)
        if access_mode(attr, ctx.uid, ctx.gids) & mask != mask:
            raise err(errno.EACCES)

    def _access(self, ctx: Context, attr: Attr, mask: int) -> None:
        """access() with the attributes at hand (inside transactions)."""
        if ctx.uid == 0 or not ctx.check_permission:
            return
        if access_mode(attr, ctx.uid, ctx.gids) & mask != mask:
            raise err(errno.EACCES)

    def getattr(self, ino: int) -> Attr:
        ino = self._check_root(ino)
        attr = self._txn(lambda tx: tx.get_attr(ino), readonly=True)
        if attr is None:
            if ino in (ROOT_INODE, TRASH_INODE):  # as JuiceFS: never fail on the special dirs
                return _dir_attr(0o555 if ino == TRASH_INODE else 0o777, (0, 0))
            raise err(errno.ENOENT)
        return attr

    def get_parents(self, ino: int) -> dict[int, int]:
        """parent inode -> number of links from it."""
        if ino in (ROOT_INODE, TRASH_INODE):
            return {ROOT_INODE: 1}
        attr = self.getattr(ino)
        if attr.parent > 0:
            return {attr.parent: 1}
        return self._txn(lambda tx: tx.get_parents(ino), readonly=True)

    def _touch_atime(self, ino: int) -> None:
        """Update atime as the atime mode asks (relatime: when older than m/ctime or a day)."""
        mode = self.conf.atime_mode
        if mode == "noatime" or self.conf.read_only:
            return
        now = now_ts()

        def fn(tx: Txn) -> None:
            a = tx.get_attr(ino)
            if a is None:
                return
            if mode == "relatime":
                at = (a.atime, a.atimensec)
                if at >= (a.mtime, a.mtimensec) and at >= (a.ctime, a.ctimensec) and now[0] - a.atime < 86400:
                    return
            stamp(a, now, atime=True)
            tx.set_attr(ino, a)

        try:
            self._txn(fn)
        except FsError as e:
            logger.debug("update atime of inode %d: %s", ino, e)


# juicefs_meta_ops_*: the public operations timed in one place (metrics.META_OPS names them).
metrics.instrument_methods(Meta, metrics.META_OPS)


def _txn_caller(fn: Callable) -> str:
    """The operation a transaction function belongs to (`mknod` of NamespaceOps.mknod.<locals>.fn)."""
    return getattr(fn, "__qualname__", "").split(".<locals>")[0].rsplit(".", 1)[-1] or "txn"


def _dir_attr(mode: int, now: tuple[int, int]) -> Attr:
    a = Attr(typ=TYPE_DIRECTORY, mode=mode, nlink=2, length=4 << 10, parent=ROOT_INODE)
    stamp(a, (now[0], 0), atime=True, mtime=True, ctime=True)
    return a


def _gofmt(v: object) -> str:
    """A value as Go's %v prints it."""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)
