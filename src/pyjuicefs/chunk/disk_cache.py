"""The local disk cache of blocks, laid out as JuiceFS 1.4 (pkg/chunk/disk_cache.go):

    <cache-dir>/<volume UUID>/.lock                     an id for this directory (a UUID)
    <cache-dir>/<volume UUID>/raw/<block key>           cached blocks (chunks/0/0/1_0_4096)
    <cache-dir>/<volume UUID>/rawstaging/<block key>    write-back blocks not uploaded yet

Files are the block plus a crc32c trailer (cache_file.py), written to `.tmp` and renamed, with
`--cache-mode`; directories get the mode plus x for whoever may read. A staged block is
hard-linked into raw/ so reads find it; a raw file with more than one link is a staging block.

A block is accounted as its length + 4096 bytes. When the accounted size passes the capacity
(or the file system's free space/inodes fall under `free_space_ratio`), blocks are evicted to 95 %
of the goal by the policy (eviction.py); staging blocks never are. Cache writes are queued and
written by one thread per directory; a queue over its byte budget drops the block (the read
that fetched it is never delayed). The directory is scanned in the background at start; until
the scan is done, a lookup just tries the file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable

from .. import metrics
from ..errors import UserError
from .cache_config import CacheConfig
from .cache_file import CorruptBlock, read_block_file, write_block_file
from .eviction import KeyIndex

log = logging.getLogger(__name__)

RAW = "raw"
STAGING = "rawstaging"
ENTRY_OVERHEAD = 4096
BLOCK_KEY = re.compile(r"^chunks/(\d+|[0-9a-fA-F]{2})/\d+/\d+_\d+_\d+$")  # as JuiceFS's scanStaging

DiskUsage = Callable[[str], tuple[int, int, int, int]]  # (total bytes, free bytes, total inodes, free inodes)


def disk_usage(path: str) -> tuple[int, int, int, int]:
    st = os.statvfs(path)
    return st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize, st.f_files, st.f_favail


def block_length(key: str) -> int:
    """The block length that ends an object name (`..._<indx>_<len>`), 0 if none."""
    try:
        return int(key.rsplit("_", 1)[1])
    except (IndexError, ValueError):
        return 0


class CacheStats:
    """Counters shared by the stores of one manager (read without a lock: ints)."""

    def __init__(self) -> None:
        self.hits = 0
        self.hit_bytes = 0
        self.misses = 0
        self.miss_bytes = 0
        self.writes = 0
        self.write_bytes = 0
        self.drops = 0
        self.evictions = 0
        self.corrupt = 0


class DiskCacheStore:
    """One cache directory (`root` = <cache-dir>/<UUID>). Thread-safe; `_lock` guards the index,
    `used`, the pending writes; never held during file I/O."""

    def __init__(self, root: str, capacity: int, conf: CacheConfig, *, max_items: int = 0,
                 pending_limit: int = 64 << 20, stats: CacheStats | None = None,
                 usage: DiskUsage = disk_usage) -> None:
        self.root = root
        self.conf = conf
        self.mode = conf.cache_mode
        self.dir_mode = self.mode | ((self.mode & 0o444) >> 2) | ((self.mode & 0o444) >> 1)
        self.capacity = capacity
        self.max_items = max_items
        self.free_ratio = conf.free_space_ratio
        self.level = conf.verify_checksum
        self.pending_limit = pending_limit
        self.stats = stats or CacheStats()
        self._usage = usage
        self._lock = threading.Lock()
        self.index = KeyIndex(conf.cache_eviction)
        self.used = 0
        self.scanned = False
        self.raw_full = False
        self.stage_full = False
        self._pending: dict[str, bytes] = {}
        self._queue: deque[str] = deque()
        self._pending_bytes = 0
        self._cv = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._check_access()
        self.id = self._lock_file()
        self._limit_by_free_ratio()
        self._threads = [threading.Thread(target=fn, name=f"jfs-cache-{name}", daemon=True)
                         for name, fn in (("writer", self._writer), ("scan", self._scan),
                                          ("space", self._check_space))]
        for t in self._threads:
            t.start()

    # --- setup ------------------------------------------------------------------------------------
    def _mkdir(self, path: str) -> None:
        if not os.path.isdir(path):
            parent = os.path.dirname(path)
            if parent != path and not os.path.isdir(parent):
                self._mkdir(parent)
            try:
                os.mkdir(path, self.dir_mode)
                os.chmod(path, self.dir_mode)  # the umask may have removed bits
            except FileExistsError:
                pass

    def _check_access(self) -> None:
        """The process must be able to create, write and read files here (else one clear line)."""
        try:
            for sub in ("", RAW):
                self._mkdir(os.path.join(self.root, sub) if sub else self.root)
            probe = os.path.join(self.root, RAW, f".probe-{os.getpid()}-{threading.get_ident()}")
            write_block_file(probe, b"x", self.mode, False)
            os.unlink(probe)
        except OSError as e:
            raise UserError(f"cache dir {self.root}: {e.strerror or e} (the client needs read and write access to "
                            f"its --cache-dir; fix its permissions or choose another one)") from None

    def _lock_file(self) -> str:
        path = os.path.join(self.root, ".lock")
        try:
            with open(path, "a+") as f:
                f.seek(0)
                ident = f.read().strip()
                if not ident:
                    ident = str(uuid.uuid4())
                    f.write(ident)
            return ident
        except OSError as e:
            log.warning("lock file %s: %s", path, e)
            return self.root

    def free_ratios(self) -> tuple[float, float, int, int]:
        """(free space ratio, free inode ratio, total bytes, total inodes) of the file system."""
        try:
            total, free, files, ffree = self._usage(self.root)
        except OSError:
            return 1.0, 1.0, 0, 0
        return (free / total if total else 1.0), (ffree / files if files else 1.0), total, files

    def _limit_by_free_ratio(self) -> None:
        br, fr, total, files = self.free_ratios()
        if br < self.free_ratio or fr < self.free_ratio:
            log.warning("not enough space (%d%%) or inodes (%d%%) for caching in %s: free ratio should be >= %d%%",
                        int(br * 100), int(fr * 100), self.root, int(self.free_ratio * 100))
        limit = int((1 - self.free_ratio) * total)
        if total and limit < self.capacity:
            log.info("cache capacity of %s lowered by the free space ratio: %d -> %d bytes",
                     self.root, self.capacity, limit)
            self.capacity = limit
        ilimit = int((1 - self.free_ratio) * files)
        if files and (self.max_items == 0 or ilimit < self.max_items):
            self.max_items = ilimit

    # --- paths ------------------------------------------------------------------------------------
    def cache_path(self, key: str) -> str:
        return os.path.join(self.root, RAW, key)

    def stage_path(self, key: str) -> str:
        return os.path.join(self.root, STAGING, key)

    # --- reads --------------------------------------------------------------------------------------
    def load(self, key: str, off: int = 0, n: int = -1) -> bytes | None:
        """Bytes [off, off+n) of a cached block, verified; None if it is not cached (a corrupt or
        unreadable block is dropped and reported as not cached)."""
        length = block_length(key)
        if n < 0:
            n = length - off
        with self._lock:
            data = self._pending.get(key)
            if data is not None:
                return data[off:off + n]
            if self.scanned and key not in self.index:
                return None
        t0 = time.perf_counter()
        try:
            out = read_block_file(self.cache_path(key), length, self.level, off, n)
        except FileNotFoundError:
            with self._lock:
                self._forget(key, False)
            return None
        except (CorruptBlock, OSError) as e:
            self.stats.corrupt += 1
            log.warning("drop cached block %s: %s", self.cache_path(key), e)
            self.remove(key, staging=False)
            return None
        metrics.cache_read(time.perf_counter() - t0)  # juicefs_blockcache_read_hist_seconds
        with self._lock:
            self.index.touch(key)
        return out

    def has(self, key: str) -> bool:
        with self._lock:
            if key in self._pending or key in self.index:
                return True
            if self.scanned:
                return False
        return os.path.exists(self.cache_path(key))

    # --- writes -------------------------------------------------------------------------------------
    def cache(self, key: str, data: bytes, force: bool = False) -> None:
        """Queue a block to be written into the cache (dropped when the queue is over budget,
        unless `force`: then the caller waits for room)."""
        if self.capacity <= 0 or self._stop.is_set():
            return
        if self.raw_full and self.index.policy == "none":
            self.stats.drops += 1
            return
        with self._cv:
            if key in self._pending or key in self.index:
                return
            while self._pending_bytes + len(data) > self.pending_limit and self._pending:
                if not force:
                    self.stats.drops += 1
                    return
                self._cv.wait(1.0)
            self._pending[key] = data
            self._pending_bytes += len(data)
            self._queue.append(key)
            self._cv.notify_all()

    def _writer(self) -> None:
        while True:
            with self._cv:
                while not self._queue and not self._stop.is_set():
                    self._cv.wait()
                if not self._queue:
                    return
                key = self._queue.popleft()
                data = self._pending.get(key)
            if data is not None:
                self._write(key, data)
            with self._cv:
                if self._pending.pop(key, None) is not None:
                    self._pending_bytes -= len(data or b"")
                self._cv.notify_all()

    def _write(self, key: str, data: bytes) -> None:
        path = self.cache_path(key)
        t0 = time.perf_counter()
        try:
            self._mkdir(os.path.dirname(path))
            write_block_file(path, data, self.mode, self.level != "none")
        except OSError as e:
            log.warning("write cache file %s: %s", path, e)
            return
        metrics.cache_write(time.perf_counter() - t0)  # juicefs_blockcache_write_hist_seconds
        self.stats.writes += 1
        self.stats.write_bytes += len(data)
        self.add(key, len(data))

    def add(self, key: str, size: int, atime: float | None = None) -> None:
        """Record a block file (negative size: staging) and evict if over the limits."""
        with self._lock:
            prev = self.index.add(key, size, atime)
            if prev is not None and prev.size > 0:
                self.used -= prev.size + ENTRY_OVERHEAD
            if size > 0:
                self.used += size + ENTRY_OVERHEAD
            full = self._full()
        if full and self.index.policy != "none":
            self.cleanup()

    def _full(self) -> bool:
        return self.used > self.capacity or (self.max_items > 0 and len(self.index) > self.max_items)

    def stage(self, key: str, data: bytes) -> str:
        """Write a block to rawstaging/ (synchronously: the slice is committed after this) and
        link it into raw/; returns the staging path. OSError when it cannot be written."""
        if self.stage_full:
            raise OSError(f"not enough space in {self.root} to stage a block")
        path = self.stage_path(key)
        self._mkdir(os.path.dirname(path))
        write_block_file(path, data, self.mode, self.level != "none")
        if self.capacity > 0:
            raw = self.cache_path(key)
            try:
                self._mkdir(os.path.dirname(raw))
                try:
                    os.unlink(raw)
                except FileNotFoundError:
                    pass
                os.link(path, raw)
                self.add(key, -len(data))
            except OSError as e:
                log.warning("link %s to %s: %s", path, raw, e)
        return path

    def uploaded(self, key: str, size: int) -> None:
        """A staged block is in the object storage: its cache entry becomes evictable."""
        with self._lock:
            known = key in self.index
        if known:
            self.add(key, size)

    def remove_stage(self, key: str) -> None:
        try:
            os.unlink(self.stage_path(key))
        except FileNotFoundError:
            pass

    def _forget(self, key: str, staging: bool) -> bool:
        """Drop key from the index (lock held); whether it was there."""
        e = self.index.remove(key, staging)
        if e is not None and e.size > 0:
            self.used -= e.size + ENTRY_OVERHEAD
        return e is not None

    def remove(self, key: str, staging: bool = False) -> None:
        """Drop a cached block (and its staging file too, with `staging`)."""
        with self._cv:
            if self._pending.pop(key, None) is not None:
                self._pending_bytes -= block_length(key)
            known = self._forget(key, staging)
            # a staging block whose entry is kept must keep its raw link (reads need it)
            keep_raw = not staging and self.index.peek(key) is not None
        if not keep_raw and (known or not self.scanned or staging):
            try:
                os.unlink(self.cache_path(key))
            except FileNotFoundError:
                pass
            except OSError as e:
                log.warning("remove %s: %s", self.cache_path(key), e)
        if staging:
            self.remove_stage(key)

    # --- eviction -----------------------------------------------------------------------------------
    def cleanup(self) -> None:
        """Evict down to 95 % of the capacity (and of the space/inodes the free ratio leaves)."""
        br, fr, total, files = self.free_ratios()
        victims: list[str] = []
        with self._lock:
            goal = self.capacity * 95 // 100
            num = len(self.index) * 99 // 100
            if self.max_items and num > self.max_items * 99 // 100:
                num = self.max_items * 99 // 100
            if br < self.free_ratio:
                to_free = int(total * (self.free_ratio - br))
                goal = 0 if to_free > self.used else min(goal, (self.used - to_free) * 95 // 100)
            if fr < self.free_ratio:
                ito_free = int(files * (self.free_ratio - fr))
                num = 0 if ito_free > len(self.index) else (len(self.index) - ito_free) * 99 // 100
            for _ in range(64):  # 2-random removes at most half per pass
                if len(self.index) <= num and self.used <= goal:
                    break
                before = len(victims)
                for key, e in self.index.victims():
                    self.used -= e.size + ENTRY_OVERHEAD
                    victims.append(key)
                    self.stats.evictions += 1
                    if len(self.index) <= num and self.used <= goal:
                        break
                if len(victims) == before:
                    break
        for key in victims:
            try:
                os.unlink(self.cache_path(key))
            except OSError:
                pass
        if victims:
            log.debug("evicted %d blocks from %s", len(victims), self.root)

    def _check_space(self) -> None:
        """Every second: update the full flags from the file system, evict when short of space,
        drop expired blocks."""
        while not self._stop.wait(1.0):
            br, fr, _, _ = self.free_ratios()
            self.stage_full = br < self.free_ratio / 2 or fr < self.free_ratio / 2
            self.raw_full = br < self.free_ratio or fr < self.free_ratio
            if self.raw_full and self.index.policy != "none":
                self.cleanup()
            if self.conf.cache_expire > 0:
                with self._lock:
                    keys = self.index.expired(time.time() - self.conf.cache_expire)
                for key in keys:
                    self.remove(key)

    # --- scan ---------------------------------------------------------------------------------------
    def _scan(self) -> None:
        """Index the blocks already in raw/ (a previous mount's cache). Runs once, in the background."""
        start = time.time()
        prefix = os.path.join(self.root, RAW)
        found: list[tuple[str, int, float]] = []
        for dirpath, _dirs, files in os.walk(prefix):
            if self._stop.is_set():
                return
            for name in files:
                path = os.path.join(dirpath, name)
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                if name.endswith(".tmp") or name.startswith(".probe-"):
                    if st.st_mtime < start - 60:
                        _unlink_quiet(path)
                    continue
                key = os.path.relpath(path, prefix).replace(os.sep, "/")
                size = block_length(key)
                if size <= 0:
                    continue
                found.append((key, -size if st.st_nlink > 1 else size, st.st_atime))
        with self._lock:
            for key, size, atime in found:
                if key not in self.index:
                    self.index.add(key, size, atime)
                    if size > 0:
                        self.used += size + ENTRY_OVERHEAD
            if self.index.policy == "lru":
                self.index.sort_by_atime()
            self.scanned = True
            full = self._full()
        if found:
            log.info("found %d cached blocks (%d bytes) in %s in %.3fs", len(found), self.used, self.root,
                     time.time() - start)
        if full and self.index.policy != "none":
            self.cleanup()

    def wait_scanned(self, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while not self.scanned and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.scanned

    def flush(self, timeout: float = 60.0) -> None:
        """Wait until every queued cache write is on disk."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while self._pending and time.monotonic() < deadline:
                self._cv.wait(0.1)

    def counts(self) -> tuple[int, int]:
        """(blocks, bytes) cached, pending writes included."""
        with self._lock:
            return len(self.index) + len(self._pending), self.used + self._pending_bytes

    def close(self) -> None:
        """Write what is queued, then stop the threads."""
        self.flush()
        self._stop.set()
        with self._cv:
            self._cv.notify_all()
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(timeout=5)


def _unlink_quiet(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


class CacheManager:
    """The cache directories of one mount; a block lives in one of them, chosen by rendezvous
    hashing of (directory id, key), so a remount with the same directories finds it again.
    (JuiceFS uses a consistent-hash ring of murmur3 instead: a JuiceFS cache spread over several
    directories is still found — `load` falls back to looking in every directory.)"""

    def __init__(self, stores: list[DiskCacheStore], stats: CacheStats) -> None:
        if not stores:
            raise ValueError("no cache directory")
        self.stores = stores
        self.stats = stats

    def store_for(self, key: str) -> DiskCacheStore:
        if len(self.stores) == 1:
            return self.stores[0]
        kb = key.encode()
        return max(self.stores, key=lambda s: hashlib.blake2b(s.id.encode() + b"\0" + kb, digest_size=8).digest())

    def load(self, key: str, off: int = 0, n: int = -1) -> bytes | None:
        s = self.store_for(key)
        data = s.load(key, off, n)
        if data is None and len(self.stores) > 1:
            for other in self.stores:
                if other is not s and (not other.scanned or key in other.index):
                    data = other.load(key, off, n)
                    if data is not None:
                        break
        return data

    def has(self, key: str) -> bool:
        return self.store_for(key).has(key)

    def cache(self, key: str, data: bytes, force: bool = False) -> None:
        self.store_for(key).cache(key, data, force)

    def stage(self, key: str, data: bytes) -> str:
        return self.store_for(key).stage(key, data)

    def uploaded(self, key: str, size: int) -> None:
        self.store_for(key).uploaded(key, size)

    def remove_stage(self, key: str) -> None:
        self.store_for(key).remove_stage(key)

    def remove(self, key: str, staging: bool = False) -> None:
        for s in self.stores:
            s.remove(key, staging)

    def counts(self) -> tuple[int, int]:
        blocks = size = 0
        for s in self.stores:
            b, n = s.counts()
            blocks += b
            size += n
        return blocks, size

    def flush(self) -> None:
        for s in self.stores:
            s.flush()

    def close(self) -> None:
        for s in self.stores:
            s.close()


def open_cache_manager(conf: CacheConfig, volume_uuid: str, *, buffer_size: int = 300 << 20,
                       block_size: int = 4 << 20, usage: DiskUsage = disk_usage) -> CacheManager:
    """The disk cache of a volume over conf.cache_dirs (each gets <dir>/<UUID>); UserError when a
    directory is not usable. The caller handles `memory` and a zero cache size."""
    dirs = sorted({os.path.abspath(os.path.expanduser(d.strip())) for d in conf.cache_dirs if d.strip()})
    if not dirs:
        raise UserError("no cache directory given (--cache-dir)")
    stats = CacheStats()
    # JuiceFS: 20 % of the buffer may hold blocks waiting to be written into the cache.
    pending = max(buffer_size // 5 // len(dirs), block_size)
    stores: list[DiskCacheStore] = []
    try:
        for d in dirs:
            stores.append(DiskCacheStore(os.path.join(d, volume_uuid), conf.cache_size // len(dirs), conf,
                                         max_items=conf.cache_items // len(dirs), pending_limit=pending,
                                         stats=stats, usage=usage))
    except BaseException:
        for s in stores:
            s.close()
        raise
    return CacheManager(stores, stats)
