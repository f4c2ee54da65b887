"""The read path: committed slices (meta.read, cached per open inode) → newest-wins overlay →
ChunkStore reads, zeros for holes; plus readahead of sequential streams into a memory budget.

Per open inode a FileState (handles.py) caches each chunk's visible segments; the cache and every
prefetched piece carry the inode's generation, which own commits, truncate, fallocate and
copy_file_range bump (close-to-open: open bumps it too). A piece of an older generation is never
used. Per handle a FileReader runs the chunk.readahead policy; its fetches run on a small,
bounded prefetch pool. Locks are in docs/dev/vfs.md.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from ..chunk import ChunkStore, Readahead
from ..layout import Segment, build_slices, chunk_ranges, clip

if TYPE_CHECKING:
    from ..meta.base import Meta
    from .config import VFSConfig
    from .handles import FileState

log = logging.getLogger(__name__)

READAHEAD_THREADS = 8  # at least this many readahead fetches run at once (more with --prefetch)


class DataReader:
    """Shared by every handle of a VFS: the slice lookups, the prefetch pool and its budget."""

    def __init__(self, meta: "Meta", store: ChunkStore, conf: "VFSConfig") -> None:
        self.meta = meta
        self.store = store
        bs = store.block_size
        self.budget = max(conf.buffer_size // 10 * 8, bs)  # JuiceFS: 80% of the buffer for readahead
        if conf.max_readahead < 0:
            self.max_readahead = 0  # off
        else:
            self.max_readahead = min(conf.max_readahead or max(bs, conf.buffer_size // 5), self.budget)
        self._lock = threading.Lock()  # guards used
        self.used = 0  # bytes of prefetched pieces held (or being fetched)
        self.pool: ThreadPoolExecutor | None = None
        if self.max_readahead >= bs:
            # Pieces are block GETs that wait on storage with the GIL released: enough of them in
            # flight to keep the object store busy (JuiceFS fetches every readahead block at once).
            self.pool = ThreadPoolExecutor(max(READAHEAD_THREADS, conf.prefetch * 2),
                                           thread_name_prefix="jfs-prefetch")

    # --- committed data ---------------------------------------------------------------------------
    def chunk_segments(self, st: "FileState", indx: int) -> list[Segment]:
        """Visible segments of a chunk, contiguous from 0 (holes id 0), cached in st."""
        with st.lock:
            gen = st.gen
            segs = st.slices.get(indx)
        if segs is not None:
            return segs
        segs = self.meta.read(st.ino, indx)
        with st.lock:
            if st.gen == gen:  # nothing changed while we asked: safe to keep
                st.slices[indx] = segs
        return segs

    def read_range(self, st: "FileState", off: int, size: int) -> bytes:
        """Bytes [off, off+size) of the committed file (the caller clamps to the length)."""
        parts = []
        for indx, coff, n in chunk_ranges(off, size):
            segs = clip(self.chunk_segments(st, indx), coff, n)
            parts.append(self.store.read_segments(segs))
        return parts[0] if len(parts) == 1 else b"".join(parts)

    # --- budget -------------------------------------------------------------------------------------
    def reserve(self, n: int) -> bool:
        with self._lock:
            if self.used + n > self.budget:
                return False
            self.used += n
            return True

    def unreserve(self, n: int) -> None:
        with self._lock:
            self.used -= n

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


class _Piece:
    __slots__ = ("size", "gen", "future")

    def __init__(self, size: int, gen: int, future: Future) -> None:
        self.size = size
        self.gen = gen
        self.future = future


class FileReader:
    """Reads of one handle; `lock` guards the readahead policy and the pieces."""

    def __init__(self, dr: DataReader, st: "FileState") -> None:
        self.dr = dr
        self.st = st
        self.lock = threading.Lock()
        self.pieces: dict[int, _Piece] = {}  # file offset -> prefetched piece
        self.ra: Readahead | None = None
        if dr.pool is not None:
            self.ra = Readahead(self._fetch, dr.store.block_size, dr.max_readahead, dr.budget, st.length,
                                drop=self._drop)

    # callbacks of the policy (called under self.lock)
    def _fetch(self, off: int, size: int) -> None:
        assert self.ra is not None and self.dr.pool is not None
        if not self.dr.reserve(size):
            self.ra.release(off, size)  # over the shared budget: skip it, it stays unrequested
            return
        try:
            fut = self.dr.pool.submit(self.dr.read_range, self.st, off, size)
        except RuntimeError:  # the pool is shut down (closing)
            self.ra.release(off, size)
            self.dr.unreserve(size)
            return
        self.pieces[off] = _Piece(size, self.st.gen, fut)

    def _drop(self, off: int, size: int) -> None:
        p = self.pieces.pop(off, None)
        if p is not None:
            p.future.cancel()
            self.dr.unreserve(p.size)

    def _release(self, off: int) -> None:
        p = self.pieces.pop(off, None)
        if p is not None:
            p.future.cancel()
            if self.ra is not None:
                self.ra.release(off, p.size)
            self.dr.unreserve(p.size)

    def read(self, off: int, size: int) -> bytes:
        """Bytes [off, off+size) of the committed file; the caller clamps size to the length."""
        end = off + size
        gen = self.st.gen
        with self.lock:
            if self.ra is not None:
                if self.ra.length != self.st.length:
                    self.ra.set_length(self.st.length)
                self.ra.on_read(off, size)
            usable: list[tuple[int, _Piece]] = []
            for o, p in list(self.pieces.items()):
                if p.gen != gen:
                    self._release(o)
                elif o < end and off < o + p.size:
                    usable.append((o, p))
        usable.sort(key=lambda x: x[0])
        out: list[bytes] = []
        pos = off
        for o, p in usable:
            if o + p.size <= pos:
                continue
            if o > pos:
                out.append(self.dr.read_range(self.st, pos, min(o, end) - pos))
                pos = min(o, end)
                if pos >= end:
                    break
            stop = min(end, o + p.size)
            try:
                data = p.future.result()
            except Exception as e:  # noqa: BLE001 - read it again inline, which reports the error
                log.debug("prefetch of [%d, +%d) failed: %s", o, p.size, e)
                data = None
            if data is None or len(data) != p.size:
                out.append(self.dr.read_range(self.st, pos, stop - pos))
            else:
                out.append(data[pos - o:stop - o])
            pos = stop
        if pos < end:
            out.append(self.dr.read_range(self.st, pos, end - pos))
        with self.lock:  # pieces read to their end are consumed
            for o, p in usable:
                if o + p.size <= end and self.pieces.get(o) is p:
                    self._release(o)
        return out[0] if len(out) == 1 else b"".join(out)

    def read_ready(self, off: int, size: int) -> bytes | None:
        """Bytes [off, off+size) when prefetched pieces of the current generation, already
        fetched, hold all of them; else None, with nothing changed. Never blocks (the FUSE adapter
        calls it on its event loop): a contended lock also gives None."""
        end = off + size
        if self.ra is None or size <= 0 or not self.lock.acquire(blocking=False):
            return None
        try:
            gen = self.st.gen
            covering = sorted((o, p) for o, p in self.pieces.items() if o < end and off < o + p.size)
            pos = off
            for o, p in covering:
                f = p.future
                if o > pos or p.gen != gen or not f.done() or f.cancelled() or f.exception() is not None \
                        or len(f.result()) != p.size:
                    return None
                pos = o + p.size
            if pos < end:
                return None
            if self.ra.length != self.st.length:
                self.ra.set_length(self.st.length)
            self.ra.on_read(off, size)  # keeps the stream's window moving, as read() does
            out = []
            for o, p in covering:
                data = p.future.result()
                lo, hi = max(off, o) - o, min(end, o + p.size) - o
                out.append(data if (lo, hi) == (0, p.size) else data[lo:hi])
                if o + p.size <= end and self.pieces.get(o) is p:
                    self._release(o)  # read to its end: consumed
            return out[0] if len(out) == 1 else b"".join(out)
        finally:
            self.lock.release()

    def invalidate(self) -> None:
        """Drop every prefetched piece (the file changed)."""
        with self.lock:
            for o in list(self.pieces):
                self._release(o)

    def close(self) -> None:
        self.invalidate()
