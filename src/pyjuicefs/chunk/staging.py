"""Write-back staging (--writeback), as JuiceFS 1.4's cachedStore: a block of a new slice is
written to `<cache>/<UUID>/rawstaging/<key>` (and linked into raw/), the slice is committed to
the metadata once all its blocks are staged, and the blocks are uploaded in the background.

- A staged block waits `upload_delay` seconds (and, with `upload_hours`, for those hours) before
  its upload; a block removed meanwhile (its file was deleted) is never uploaded: its staging
  file is deleted instead. An upload that finishes after the removal deletes the object again.
- Staged blocks survive a killed client: a mount scans rawstaging/ at start (in the background)
  and uploads what it finds, aged from the file's mtime.
- `count()` is the number of staged blocks not uploaded yet (`.stats`: pyjuicefs_staging_blocks;
  `umount --flush` waits for 0).

Threads: `max_uploads` uploader threads take ready blocks from a queue; one scanner thread finds
the staged blocks at start, then every interval moves delayed blocks that came of age to the
queue. `_lock` guards the pending map; it is never held during I/O.
"""

from __future__ import annotations

import datetime
import logging
import os
import queue
import threading
import time
from collections.abc import Callable

from .cache_file import CorruptBlock, read_block_file
from .disk_cache import BLOCK_KEY, STAGING, CacheManager, block_length

log = logging.getLogger(__name__)


class _Item:
    __slots__ = ("key", "path", "ts", "uploading")

    def __init__(self, key: str, path: str, ts: float) -> None:
        self.key = key
        self.path = path
        self.ts = ts
        self.uploading = False


class Stager:
    """upload(key, block) compresses and PUTs a block (raising on failure); delete(key) deletes
    an object. Both come from the chunk store."""

    def __init__(self, cache: CacheManager, upload: Callable[[str, bytes], None], delete: Callable[[str], None], *,
                 upload_delay: float = 0.0, upload_hours: tuple[int, int] | None = None, max_uploads: int = 20,
                 scan: bool = True) -> None:
        self.cache = cache
        self._upload = upload
        self._delete = delete
        self.delay = max(0.0, upload_delay)
        self.hours = upload_hours
        self._lock = threading.Lock()
        self._pending: dict[str, _Item] = {}
        self._queue: queue.Queue[_Item | None] = queue.Queue()
        self._stop = threading.Event()
        self.scanned = threading.Event()
        self.uploaded_blocks = 0
        self.interval = min(max(self.delay, 0.2), 60.0) if self.delay else 5.0
        self._threads = [threading.Thread(target=self._uploader, name="jfs-stage-upload", daemon=True)
                         for _ in range(max(1, max_uploads))]
        self._threads.append(threading.Thread(target=self._scanner, args=(scan,), name="jfs-stage-scan",
                                              daemon=True))
        for t in self._threads:
            t.start()

    # --- state ----------------------------------------------------------------------------------
    def count(self) -> int:
        """Staged blocks not uploaded yet."""
        with self._lock:
            return len(self._pending)

    def is_pending(self, key: str) -> bool:
        with self._lock:
            return key in self._pending

    def can_upload(self) -> bool:
        if self.hours is None or self.hours[0] == self.hours[1]:
            return True
        start, end = self.hours
        h = datetime.datetime.now().hour
        return start <= h < end if start < end else (h >= start or h < end)

    # --- adding and removing ----------------------------------------------------------------------
    def add(self, key: str, path: str, ts: float | None = None, force: bool = False) -> None:
        """A staged block to upload once it is `upload_delay` old (at once with `force`)."""
        ts = time.time() if ts is None else ts
        with self._lock:
            item = self._pending.get(key)
            if item is None:
                item = self._pending[key] = _Item(key, path, ts)
            if item.uploading:
                return
            ready = force or (self.can_upload() and time.time() - item.ts >= self.delay)
            if ready:
                item.uploading = True
        if ready:
            self._queue.put(item)

    def remove(self, key: str) -> bool:
        """The block is not needed any more (its slice was deleted): never upload it. Its staging
        file is removed by the cache (remove(key, staging=True)). Whether it was pending."""
        with self._lock:
            return self._pending.pop(key, None) is not None

    def read(self, key: str, off: int, n: int, level: str) -> bytes | None:
        """Bytes of a staged block from its staging file (reads of data not uploaded yet)."""
        with self._lock:
            item = self._pending.get(key)
        if item is None:
            return None
        try:
            return read_block_file(item.path, block_length(key), level, off, n)
        except (OSError, CorruptBlock) as e:
            log.error("read staged block %s: %s", item.path, e)
            return None

    # --- threads ----------------------------------------------------------------------------------
    def _uploader(self) -> None:
        while True:
            item = self._queue.get()
            if item is None or self._stop.is_set():
                return
            try:
                self._upload_staged(item)
            except Exception:  # noqa: BLE001 - keep the uploader alive; the block is retried later
                log.exception("upload staged block %s", item.key)
            finally:
                item.uploading = False

    def _upload_staged(self, item: _Item) -> None:
        key = item.key
        if not self.is_pending(key):
            log.debug("staged block %s is not needed any more", key)
            return
        if not self.can_upload():
            return
        blen = block_length(key)
        try:
            block = read_block_file(item.path, blen, "full")
        except (OSError, CorruptBlock) as e:
            if self.is_pending(key):
                log.error("read staging file %s: %s", item.path, e)
            return
        if not self.is_pending(key):
            return
        try:
            self._upload(key, block)
        except Exception as e:  # noqa: BLE001 - stays pending, retried by the scanner
            log.warning("upload staged block %s: %s (retried later)", key, e)
            return
        if not self.remove(key):
            # deleted while it was uploading: the object is garbage now
            try:
                self._delete(key)
            except Exception as e:  # noqa: BLE001
                log.warning("delete %s (its file was deleted during the upload): %s", key, e)
            return
        self.uploaded_blocks += 1
        self.cache.uploaded(key, blen)
        self.cache.remove_stage(key)

    def _scanner(self, scan: bool) -> None:
        if scan:
            try:
                self.scan_staging()
            except Exception:  # noqa: BLE001
                log.exception("scan staging blocks")
        self.scanned.set()
        while not self._stop.wait(self.interval):
            self.upload_ready()

    def scan_staging(self) -> int:
        """Register every block found in rawstaging/ (left by an earlier mount)."""
        found = 0
        start = time.time()
        for store in self.cache.stores:
            prefix = os.path.join(store.root, STAGING)
            for dirpath, _dirs, files in os.walk(prefix):
                for name in files:
                    path = os.path.join(dirpath, name)
                    key = os.path.relpath(path, prefix).replace(os.sep, "/")
                    try:
                        st = os.stat(path)
                    except OSError:
                        continue
                    if name.endswith(".tmp"):
                        if st.st_mtime < start - 60:
                            try:
                                os.unlink(path)
                            except OSError:
                                pass
                        continue
                    if not BLOCK_KEY.match(key) or block_length(key) <= 0:
                        log.warning("ignore invalid file in staging: %s", path)
                        continue
                    self.add(key, path, st.st_mtime)
                    found += 1
        if found:
            log.info("found %d staged blocks in %.3fs: uploading them", found, time.time() - start)
        return found

    def upload_ready(self) -> None:
        """Queue the delayed blocks that are old enough."""
        if not self.can_upload():
            return
        cutoff = time.time() - self.delay
        with self._lock:
            ready = [it for it in self._pending.values() if not it.uploading and it.ts <= cutoff]
            for it in ready:
                it.uploading = True
        for it in ready:
            self._queue.put(it)

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Wait until nothing is pending (tests, flush)."""
        deadline = time.monotonic() + timeout
        while self.count() and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.count() == 0

    def close(self) -> None:
        """Stop: running uploads finish, queued ones stay staged for the next mount."""
        self._stop.set()
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join(timeout=120)
