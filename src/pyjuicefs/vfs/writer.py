"""The write path: per-inode file writers that buffer writes as slices, upload full blocks in the
background, and commit finished slices to meta — data before metadata, in creation order.

Facts from JuiceFS pkg/vfs/writer.go: a write is split by 64 MiB chunk; it continues the newest
writable slice of its chunk when it starts inside that slice's still-buffered tail (or at its end)
and overlaps no newer slice, else it opens a new slice (the newest record wins on read). A slice is
*frozen* (no more writes; its remaining blocks are uploaded and it is committed) when it reaches
the chunk end, when it is older than 5 s or idle for 1 s, when more than four are open in a chunk,
when the buffer budget is exceeded, and on flush/fsync/release. The locks are in docs/dev/vfs.md.
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from ..chunk import CHUNK_SIZE, ChunkStore, SliceWriter
from ..layout import chunk_ranges
from ..errors import FsError
from ..meta.types import Slice

if TYPE_CHECKING:
    from ..meta.base import Meta
    from .config import VFSConfig

log = logging.getLogger(__name__)

FLUSH_AGE = 5.0  # seconds: a slice this old is frozen (JuiceFS flushDuration)
IDLE_AGE = 1.0  # seconds without writes (and at least this old): frozen
MAX_OPEN_SLICES = 4  # writable slices per chunk; older ones beyond this are frozen


class _SliceBuf:
    """A slice being written: chunk positions [off, off+slen), buffered in `writer`."""

    __slots__ = ("chunk", "off", "slen", "writer", "frozen", "done", "err", "started", "touched", "mtime")

    def __init__(self, chunk: "_ChunkBuf", off: int, writer: SliceWriter) -> None:
        self.chunk = chunk
        self.off = off
        self.slen = 0
        self.writer = writer
        self.frozen = False  # no more writes; a finisher owns `writer`
        self.done = False  # finished (err tells how); waiting for its turn to commit
        self.err: BaseException | None = None
        self.started = self.touched = time.monotonic()
        self.mtime = time.time()  # the mtime its commit records (utimens while pending moves it)


class _ChunkBuf:
    __slots__ = ("indx", "slices", "commit_lock")

    def __init__(self, indx: int) -> None:
        self.indx = indx
        self.slices: list[_SliceBuf] = []  # uncommitted, in creation order
        self.commit_lock = threading.Lock()  # one committer per chunk: records keep their order


class FileWriter:
    """Pending writes of one inode. `cond` guards everything here (see docs/dev/vfs.md)."""

    def __init__(self, dw: "DataWriter", ino: int, length: int) -> None:
        self.dw = dw
        self.ino = ino
        self.length = length  # file length including pending writes
        self.cond = threading.Condition()
        self.chunks: dict[int, _ChunkBuf] = {}
        self.err = 0  # errno of the first failure; sticky until the writer is dropped
        self._flushing = 0

    # --- queries ---------------------------------------------------------------------------
    def has_pending(self) -> bool:
        with self.cond:
            return bool(self.chunks)

    def idle(self) -> bool:
        """Nothing pending, no error, no flush running. Never blocks: a contended lock is "busy"."""
        if not self.cond.acquire(blocking=False):
            return False
        try:
            return not self.chunks and not self.err and not self._flushing
        finally:
            self.cond.release()

    def get_length(self) -> int:
        with self.cond:
            return self.length

    def overlaps(self, off: int, size: int) -> bool:
        """Whether an uncommitted slice holds bytes of file range [off, off+size)."""
        end = off + size
        with self.cond:
            for c in self.chunks.values():
                base = c.indx * CHUNK_SIZE
                if base >= end or base + CHUNK_SIZE <= off:
                    continue
                for s in c.slices:
                    if base + s.off < end and off < base + s.off + s.slen:
                        return True
        return False

    # --- writing -----------------------------------------------------------------------------
    def write(self, off: int, data: bytes | bytearray | memoryview) -> None:
        self.dw.throttle()
        mv = memoryview(data).cast("B")
        with self.cond:
            while self._flushing:  # a flush in progress wins, or a steady writer would starve it
                self.cond.wait(1.0)
            if self.err:
                raise FsError(self.err)
            done = 0
            for indx, coff, n in chunk_ranges(off, len(mv)):
                self._write_chunk(indx, coff, mv[done:done + n])
                done += n
            self.length = max(self.length, off + len(mv))

    def try_write(self, off: int, data: bytes | bytearray | memoryview) -> bool:
        """write() when it cannot block: buffers under budget (no throttling), no flush running,
        a slice id at hand if one is needed (no meta round trip), the lock free. False, with
        nothing written, otherwise."""
        dw = self.dw
        ready = getattr(dw.meta, "slice_id_ready", None)
        if dw.buffered > dw.buffer_size or ready is None or not ready():
            return False
        if not self.cond.acquire(blocking=False):
            return False
        try:
            if self._flushing or self.err:
                return False
            mv = memoryview(data).cast("B")
            done = 0
            for indx, coff, n in chunk_ranges(off, len(mv)):
                self._write_chunk(indx, coff, mv[done:done + n])
                done += n
            self.length = max(self.length, off + len(mv))
            return True
        finally:
            self.cond.release()

    def _write_chunk(self, indx: int, pos: int, data: memoryview) -> None:
        c = self.chunks.get(indx)
        if c is None:
            c = self.chunks[indx] = _ChunkBuf(indx)
        s = self._writable_slice(c, pos, len(data))
        if s is None:
            s = _SliceBuf(c, pos, self.dw.store.new_writer(0))
            c.slices.append(s)
        rel = pos - s.off
        grow = max(0, rel + len(data) - s.slen)
        try:
            s.writer.write_at(data, rel)
        except ValueError as e:  # a bug in the slice choice; never corrupt silently
            log.error("write inode %d chunk %d at %d: %s", self.ino, indx, pos, e)
            raise FsError(errno.EIO) from e
        s.slen += grow
        s.touched = time.monotonic()
        s.mtime = time.time()
        self.dw.add_buffered(grow)
        if s.off + s.slen >= CHUNK_SIZE:
            self._freeze(s)
        elif s.slen >= self.dw.store.block_size:
            self._assign_id(s)
            s.writer.flush_to(s.slen)  # full blocks go to the upload pool now

    def _writable_slice(self, c: _ChunkBuf, pos: int, size: int) -> _SliceBuf | None:
        """The newest open slice this write may continue, or None (a new slice is needed)."""
        for i, s in enumerate(reversed(c.slices)):
            if not s.frozen:
                if s.off + s.writer.uploaded <= pos <= s.off + s.slen:
                    return s
                if i >= MAX_OPEN_SLICES:
                    self._freeze(s)
            if pos < s.off + s.slen and s.off < pos + size:
                return None  # overlaps a newer slice: only a newer one may hide it
        return None

    def _assign_id(self, s: _SliceBuf) -> None:
        """Take a slice id from meta the first time the slice needs one (its first upload)."""
        if s.writer.id == 0:
            s.writer.id = self.dw.meta.new_slice()

    def _freeze(self, s: _SliceBuf) -> None:
        """No more writes to s: finish its upload and commit it on a finisher thread (holding cond)."""
        if s.frozen:
            return
        s.frozen = True
        self.dw.finishers.submit(self._finish, s)

    # --- finishing and committing (finisher threads) -------------------------------------------
    def _finish(self, s: _SliceBuf) -> None:
        err: BaseException | None = None
        try:
            self._assign_id(s)
            s.writer.finish(s.slen)
        except BaseException as e:  # noqa: BLE001 - any failure means the slice is broken
            err = e
            try:
                s.writer.abort()
            except Exception as e2:  # noqa: BLE001
                log.warning("abort slice %d of inode %d: %s", s.writer.id, self.ino, e2)
        with self.cond:
            s.done = True
            s.err = err
        self._commit_ready(s.chunk)

    def _commit_ready(self, c: _ChunkBuf) -> None:
        """Commit the finished slices at the head of the chunk's queue, oldest first."""
        with c.commit_lock:
            while True:
                with self.cond:
                    if not c.slices or not c.slices[0].done:
                        return
                    s = c.slices[0]
                code = 0
                if s.err is not None:
                    code = errno.EIO
                    self._log_failure(f"upload slice {s.writer.id} ({s.slen} bytes) failed: {s.err}")
                else:
                    code = self._commit(c, s)
                with self.cond:
                    c.slices.pop(0)
                    if code and not self.err:
                        self.err = code
                    if not c.slices and self.chunks.get(c.indx) is c:
                        del self.chunks[c.indx]
                    self.cond.notify_all()
                self.dw.add_buffered(-s.slen)

    def _commit(self, c: _ChunkBuf, s: _SliceBuf) -> int:
        """Record a durable slice in meta; returns an errno (0 on success)."""
        sid = s.writer.id
        try:
            self.dw.meta.write(self.ino, c.indx, s.off, Slice(0, sid, s.slen, 0, s.slen), mtime=s.mtime)
        except FsError as e:
            if e.errno == errno.ENOENT:  # the file is gone: its objects are garbage now
                self.dw.remove_slice(sid, s.slen)
                return errno.ENOENT
            self._log_failure(f"commit slice {sid} to chunk {c.indx}: {e}")
            return e.errno if e.errno in (errno.ENOSPC, errno.EDQUOT) else errno.EIO
        except Exception as e:  # noqa: BLE001 - an engine failure must not kill the finisher
            self._log_failure(f"commit slice {sid} to chunk {c.indx}: {e}")
            return errno.EIO
        self.dw.committed(self.ino, c.indx * CHUNK_SIZE + s.off, s.slen)
        return 0

    def _log_failure(self, msg: str) -> None:
        """Log the first failure of this writer as an error, later ones at debug (log once)."""
        level = logging.DEBUG if self.err else logging.ERROR
        log.log(level, "write inode %d: %s", self.ino, msg)

    # --- flushing ------------------------------------------------------------------------------
    def flush(self) -> None:
        """Freeze every slice, wait until all are committed; FsError(EIO…) if any failed."""
        with self.cond:
            self._flushing += 1
            try:
                while self.chunks:
                    for c in list(self.chunks.values()):
                        for s in c.slices:
                            self._freeze(s)
                    self.cond.wait(1.0)
                code = self.err
            finally:
                self._flushing -= 1
                if not self._flushing:
                    self.cond.notify_all()
        if code:
            raise FsError(code)

    def freeze_stale(self, now: float, over_budget: int) -> int:
        """Freeze old or idle slices, and (while over_budget > 0) the biggest open ones; returns
        how much is still over budget."""
        with self.cond:
            open_slices = [s for c in self.chunks.values() for s in c.slices if not s.frozen]
            for s in open_slices:
                if now - s.started > FLUSH_AGE or (now - s.touched > IDLE_AGE and now - s.started > IDLE_AGE):
                    self._freeze(s)
                    over_budget -= s.slen
            if over_budget > 0:
                for s in sorted((s for s in open_slices if not s.frozen), key=lambda s: -s.slen):
                    if over_budget <= 0:
                        break
                    self._freeze(s)
                    over_budget -= s.slen
        return over_budget

    def truncate(self, length: int) -> None:
        """The file was truncated (after a flush, so nothing is pending)."""
        with self.cond:
            self.length = length

    def update_mtime(self, mtime: float) -> None:
        """utimens while writes are pending: their commits must not move mtime back."""
        with self.cond:
            for c in self.chunks.values():
                for s in c.slices:
                    s.mtime = mtime


class DataWriter:
    """All file writers of a VFS, the buffer budget, and the finisher pool."""

    def __init__(self, meta: "Meta", store: ChunkStore, conf: "VFSConfig",
                 on_commit=None) -> None:
        self.meta = meta
        self.store = store
        self.buffer_size = max(conf.buffer_size, store.block_size)
        self._on_commit = on_commit  # (ino, off, len) -> None: readers drop what they cached
        self._lock = threading.Lock()  # guards files and buffered
        self.files: dict[int, FileWriter] = {}
        self.buffered = 0  # bytes written into slices not yet committed (or dropped)
        self.finishers = ThreadPoolExecutor(max(4, conf.max_uploads), thread_name_prefix="jfs-commit")
        self._closed = threading.Event()

    def open(self, ino: int, length: int) -> FileWriter:
        with self._lock:
            fw = self.files.get(ino)
            if fw is None:
                fw = self.files[ino] = FileWriter(self, ino, length)
            return fw

    def find(self, ino: int) -> FileWriter | None:
        with self._lock:
            return self.files.get(ino)

    def drop(self, ino: int) -> None:
        """Forget an inode's writer (after its last handle flushed)."""
        with self._lock:
            self.files.pop(ino, None)

    def add_buffered(self, n: int) -> None:
        with self._lock:
            self.buffered += n

    def committed(self, ino: int, off: int, length: int) -> None:
        if self._on_commit is not None:
            self._on_commit(ino, off, length)

    def remove_slice(self, sid: int, size: int) -> None:
        try:
            self.store.remove(sid, size)
        except Exception as e:  # noqa: BLE001 - leaked objects are found by gc
            log.warning("remove slice %d of a deleted file: %s", sid, e)

    def flush_stale(self) -> None:
        """Freeze old/idle slices everywhere, and the biggest ones while over the buffer budget
        (run every 100 ms by the VFS flusher thread, and by writers that hit the budget)."""
        now = time.monotonic()
        with self._lock:
            files = list(self.files.values())
            over = self.buffered - self.buffer_size
        for fw in files:
            over = fw.freeze_stale(now, over)

    def throttle(self) -> None:
        """Slow a writer down while the buffers are over budget (as JuiceFS: 10 ms once, then
        wait while over twice the budget)."""
        if self.buffered <= self.buffer_size:
            return
        self.flush_stale()
        time.sleep(0.01)
        while self.buffered > 2 * self.buffer_size and not self._closed.is_set():
            time.sleep(0.1)

    def flush_all(self) -> list[tuple[int, FsError]]:
        """Flush every writer; returns the failures."""
        failed = []
        with self._lock:
            files = list(self.files.values())
        for fw in files:
            try:
                fw.flush()
            except FsError as e:
                log.error("flush inode %d: %s", fw.ino, e)
                failed.append((fw.ino, e))
        return failed

    def close(self) -> None:
        self._closed.set()
        self.finishers.shutdown(wait=True)
