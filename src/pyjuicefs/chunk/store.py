"""The chunk store: slices of file data as block objects, written and read as JuiceFS 1.4 does.

A slice (at most one 64 MiB chunk, identified by an id from the metadata engine) is cut into
blocks of `block_size` bytes, the last one shorter; block i is the object
`chunks/<id/1000/1000>/<id/1000>/<id>_<i>_<its length>` (object/names.py), compressed as a
whole. Facts from pkg/chunk/cached_store.go; the data path and locks are in docs/dev/chunk.md.

`storage` is rooted at the volume prefix (`<name>/`): keys given to it start with `chunks/`.
With a CacheConfig and a disk cache (disk_cache.py), blocks are also cached on local disk,
staged there with write-back (staging.py), and GET/PUT bandwidth and concurrency are limited
(limits.py); docs/dev/cache.md.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from ..compress import Compressor, new_compressor
from ..errors import ObjectNotFound, StorageAuthError, StorageError
from ..object.base import ObjectStorage
from ..object.names import block_key, block_size_at, slice_keys
from .cache import BlockCache, SingleFlight
from .cache_config import CacheConfig
from ..layout import CHUNK_SIZE, Segment
from .limits import TokenBucket
from .staging import Stager

if TYPE_CHECKING:
    from ..format import Format
    from .disk_cache import CacheManager

log = logging.getLogger(__name__)

_pool_thread = threading.local()  # .in_pool: set in our download threads (see read_at)


def _mark_pool_thread() -> None:
    _pool_thread.in_pool = True


def juicefs_retry_delay(attempt: int) -> float:
    """JuiceFS waits attempt² seconds before attempt number `attempt` (0 for the first)."""
    return float(attempt * attempt)


class ChunkStore:
    """Writes and reads slices; thread-safe. One per mounted volume.

    block_size: bytes (a volume's Format.BlockSize is in KiB). compressor: a Compressor or the
    volume's `Compression` name. max_uploads / max_downloads bound the concurrent PUTs / GETs.
    cache_size: bytes of whole blocks kept in memory (0: none). max_retries: PUT attempts after
    the first. retry_delay(attempt) -> seconds to sleep before attempt (JuiceFS: attempt²).
    conf + disk: the disk cache, write-back staging and limits (without them: memory cache only,
    no limits). max_downloads bounds concurrent GETs (the download pool has at most 32 threads).
    """

    def __init__(
        self,
        storage: ObjectStorage,
        block_size: int = 4 << 20,
        compressor: Compressor | str | None = None,
        hash_prefix: bool = False,
        max_uploads: int = 20,
        *,
        max_downloads: int = 16,
        cache_size: int = 128 << 20,
        max_retries: int = 10,
        get_retries: int = 2,
        retry_delay: Callable[[int], float] = juicefs_retry_delay,
        conf: CacheConfig | None = None,
        disk: "CacheManager | None" = None,
    ) -> None:
        if block_size <= 0 or CHUNK_SIZE % block_size:
            raise ValueError(f"block size {block_size} must divide the chunk size {CHUNK_SIZE}")
        self.storage = storage
        self.block_size = block_size
        self.compressor = compressor if isinstance(compressor, Compressor) else new_compressor(compressor)
        self.hash_prefix = hash_prefix
        self.max_retries = max_retries
        self.get_retries = get_retries
        self.retry_delay = retry_delay
        self.cache = BlockCache(cache_size)
        self.conf = conf
        self.disk = disk
        self.verify = conf.verify_checksum if conf is not None else "none"
        self._flight: SingleFlight[bytes] = SingleFlight()
        self._uploads = ThreadPoolExecutor(max(1, max_uploads), thread_name_prefix="jfs-upload")
        self._up_slots = threading.BoundedSemaphore(max(1, max_uploads))  # direct and staged PUTs together
        self._get_slots = threading.BoundedSemaphore(max(1, max_downloads))
        self._downloads = ThreadPoolExecutor(
            max(1, min(max_downloads, 32)), thread_name_prefix="jfs-download", initializer=_mark_pool_thread
        )
        self.up_limit = TokenBucket.for_limit(conf.upload_limit) if conf is not None else None
        self.down_limit = TokenBucket.for_limit(conf.download_limit) if conf is not None else None
        self.hits = self.hit_bytes = self.misses = self.miss_bytes = 0  # block reads (any cache)
        self.stager: Stager | None = None
        if disk is not None and conf is not None and conf.writeback:
            self.stager = Stager(disk, lambda k, b: self._put_block(k, b, 3), self._delete_object,
                                 upload_delay=conf.upload_delay, upload_hours=conf.upload_hours,
                                 max_uploads=max_uploads)

    @classmethod
    def for_volume(cls, storage: ObjectStorage, fmt: "Format", **kw: Any) -> "ChunkStore":
        """A store with a volume's block size (Format.BlockSize is in KiB), compression and
        hash-prefix setting; `storage` is rooted at `<name>/` (and already decrypts, if set)."""
        return cls(storage, fmt.BlockSize << 10, fmt.Compression, fmt.HashPrefix, **kw)

    # --- names ---------------------------------------------------------------------------------
    def block_key(self, slice_id: int, indx: int, slice_size: int) -> str:
        """Object name of block `indx` of slice `slice_id` of `slice_size` bytes."""
        return block_key(slice_id, indx, block_size_at(slice_size, indx, self.block_size), self.hash_prefix)

    def keys(self, slice_id: int, slice_size: int) -> list[str]:
        """Object names of every block of a slice."""
        return slice_keys(slice_id, slice_size, self.block_size, self.hash_prefix)

    # --- write ---------------------------------------------------------------------------------
    def new_writer(self, slice_id: int) -> "SliceWriter":
        return SliceWriter(self, slice_id)

    def _upload(self, key: str, block: bytes | bytearray, cancelled: Callable[[], bool]) -> None:
        """Store one block of a new slice; runs on an upload thread. With write-back the block is
        staged on disk and uploaded later (a failed staging falls back to a direct upload)."""
        if self.stager is not None and self.disk is not None:
            try:
                path = self.disk.stage(key, block)
            except OSError as e:
                log.warning("write %s to the staging dir: %s; uploading it directly", key, e)
            else:
                self.stager.add(key, path)
                return
        self._put_block(key, block, self.max_retries + 1, cancelled)
        small = len(block) < self.block_size
        if self.disk is not None and (small or (self.conf is not None and self.conf.cache_large_write)):
            block = bytes(block)  # caches hand their blocks to readers: immutable bytes only
            self.disk.cache(key, block)
        if small:
            # JuiceFS keeps small written blocks in its cache: they are read back soon.
            self.cache.put(key, bytes(block))

    def _put_block(self, key: str, block: bytes | bytearray, tries: int,
                   cancelled: Callable[[], bool] = lambda: False) -> None:
        """Compress and PUT one block, retrying up to `tries` times (attempt² s apart)."""
        # Without compression the object is the block itself: skip the compressor's copy.
        payload = block if self.compressor.seekable else self.compressor.compress(block)
        err: BaseException | None = None
        for attempt in range(tries):
            if attempt:
                delay = self.retry_delay(attempt)
                if delay > 0:
                    time.sleep(delay)
            if cancelled():
                raise StorageError(f"upload block {key}: cancelled after {attempt} tries ({err})")
            try:
                with self._up_slots:
                    if self.up_limit is not None:
                        self.up_limit.wait(len(payload))
                    self.storage.put(key, payload)
            except StorageAuthError:
                raise
            except (StorageError, OSError) as e:
                err = e
                log.warning("upload %s: %s (try %d)", key, e, attempt + 1)
                continue
            return
        raise StorageError(f"upload block {key}: {err} (after {tries} tries)") from err

    # --- read ----------------------------------------------------------------------------------
    def read_at(self, slice_id: int, slice_size: int, off: int, length: int) -> bytes:
        """Bytes [off, off+length) of a slice; the range must lie inside the slice."""
        if slice_id <= 0:
            raise ValueError("slice id 0 is a hole: use zeros()")
        if off < 0 or length < 0 or off + length > slice_size:
            raise ValueError(f"read [{off}, {off + length}) outside slice {slice_id} of {slice_size} bytes")
        bs = self.block_size
        parts: list[tuple[int, int, int]] = []  # (block index, offset in block, length)
        pos, end = off, off + length
        while pos < end:
            indx, boff = divmod(pos, bs)
            n = min(end - pos, bs - boff)
            parts.append((indx, boff, n))
            pos += n
        if not parts:
            return b""
        if len(parts) == 1 or getattr(_pool_thread, "in_pool", False):
            # One block, or already on a download thread (waiting on the pool there could starve it).
            return b"".join(self._read_block(slice_id, slice_size, *p) for p in parts)
        futures = [self._downloads.submit(self._read_block, slice_id, slice_size, *p) for p in parts[1:]]
        try:
            first = self._read_block(slice_id, slice_size, *parts[0])
            return first + b"".join(f.result() for f in futures)
        finally:
            for f in futures:
                f.cancel()

    def _read_block(self, slice_id: int, slice_size: int, indx: int, boff: int, n: int) -> bytes:
        blen = block_size_at(slice_size, indx, self.block_size)
        key = block_key(slice_id, indx, blen, self.hash_prefix)
        data = self.cache.get(key)
        if data is not None:
            self._count(True, n)
            return data[boff:boff + n]
        if self.disk is not None:
            part = self.disk.load(key, boff, n)
            if part is None and self.stager is not None:
                part = self.stager.read(key, boff, n, self.verify)  # staged, not uploaded yet
            if part is not None:
                self._count(True, n)
                return part
        self._count(False, n)
        # JuiceFS reads a range only of an uncompressed block, for a small read that does not start
        # the block: a read from the start (or a big one) is likely followed by the rest, so the
        # whole block is fetched and cached.
        if self.compressor.seekable and boff > 0 and n <= blen // 4:
            try:
                found, whole = self._flight.piggyback(key)
                if found and whole is not None:
                    return whole[boff:boff + n]
            except StorageError:
                pass  # the full read failed; try the range
            try:
                part = self._get(key, boff, n)
                if len(part) == n:
                    if self.disk is not None:
                        self._prefetch(key, blen)
                    return part
                log.warning("short range read of %s: %d < %d bytes", key, len(part), n)
            except ObjectNotFound:
                raise
            except StorageError as e:
                log.warning("range read of %s failed, reading it whole: %s", key, e)
        block = self._flight.do(key, lambda: self._load(key, blen))
        return block[boff:boff + n]

    def _load(self, key: str, blen: int, force_cache: bool = False) -> bytes:
        """GET a whole block object, decompress it, cache it (the disk cache write is queued)."""
        raw = self._get(key, 0, -1)
        block = self.compressor.decompress(raw, blen)
        self.cache.put(key, block)
        if self.disk is not None and (force_cache or self._should_cache(blen)):
            self.disk.cache(key, block)
        return block

    def _should_cache(self, blen: int) -> bool:
        """JuiceFS shouldCache: every block, or only partial ones with --cache-partial-only."""
        c = self.conf
        return c is None or not c.cache_partial_only or blen < self.block_size or c.upload_delay > 0

    def _prefetch(self, key: str, blen: int) -> None:
        """After a range read, fetch the whole block into the disk cache in the background
        (JuiceFS's prefetcher), unless it is there or on its way."""
        assert self.disk is not None
        if self.disk.has(key):
            return
        try:
            self._downloads.submit(self._prefetch_one, key, blen)
        except RuntimeError:
            pass  # shutting down

    def _prefetch_one(self, key: str, blen: int) -> None:
        try:
            self._flight.do(key, lambda: self._load(key, blen, force_cache=True))
        except Exception as e:  # noqa: BLE001 - only a prefetch
            log.debug("prefetch %s: %s", key, e)

    def _count(self, hit: bool, n: int) -> None:
        # unlocked int adds: a lost increment under a race only blurs a statistic
        if hit:
            self.hits += 1
            self.hit_bytes += n
        else:
            self.misses += 1
            self.miss_bytes += n

    def metrics(self) -> dict[str, float]:
        """Cache and staging figures for `.stats` (JuiceFS metric names, without the prefix)."""
        blocks, used = self.disk.counts() if self.disk is not None else (len(self.cache), self.cache.used)
        out: dict[str, float] = {
            "blockcache_hits": self.hits, "blockcache_miss": self.misses,
            "blockcache_hit_bytes": self.hit_bytes, "blockcache_miss_bytes": self.miss_bytes,
            "blockcache_blocks": blocks, "blockcache_bytes": used,
            "staging_blocks": self.stager.count() if self.stager is not None else 0,
        }
        if self.disk is not None:
            st = self.disk.stats
            out.update(blockcache_write=st.writes, blockcache_write_bytes=st.write_bytes,
                       blockcache_drops=st.drops, blockcache_evict=st.evictions,
                       blockcache_corrupt=st.corrupt)
        return out

    def staging_blocks(self) -> int:
        """Staged blocks not uploaded yet (0 without write-back)."""
        return self.stager.count() if self.stager is not None else 0

    def forget_block(self, key: str) -> None:
        """A block of a deleted or aborted slice: out of every cache, and never uploaded."""
        self.cache.remove(key)
        if self.stager is not None:
            self.stager.remove(key)
        if self.disk is not None:
            self.disk.remove(key, staging=True)

    def _delete_object(self, key: str) -> None:
        try:
            self.storage.delete(key)
        except ObjectNotFound:
            pass

    def _get(self, key: str, off: int, limit: int) -> bytes:
        err: BaseException | None = None
        for attempt in range(self.get_retries + 1):
            if attempt:
                delay = self.retry_delay(attempt)
                if delay > 0:
                    time.sleep(delay)
            try:
                with self._get_slots:
                    data = self.storage.get(key, off, limit)
                if self.down_limit is not None:
                    self.down_limit.wait(len(data))
                return data
            except (ObjectNotFound, StorageAuthError):
                raise
            except (StorageError, OSError) as e:
                err = e
                log.warning("get %s: %s (try %d)", key, e, attempt + 1)
        if isinstance(err, StorageError):
            raise err
        raise StorageError(f"get {key}: {err}") from err

    def read_segments(self, segments: Iterable[Segment]) -> bytes:
        """The bytes that contiguous segments (layout.visible output) show; holes read as zeros."""
        return b"".join(
            zeros(s.len) if s.is_hole else self.read_at(s.id, s.size, s.off, s.len) for s in segments
        )

    # --- cache and removal ---------------------------------------------------------------------
    def fill_cache(self, slice_id: int, slice_size: int) -> None:
        """Load every block of a slice into the memory cache (warmup)."""
        for i, key in enumerate(self.keys(slice_id, slice_size)):
            if key not in self.cache and (self.disk is None or not self.disk.has(key)):
                blen = block_size_at(slice_size, i, self.block_size)
                self._flight.do(key, lambda k=key, b=blen: self._load(k, b, force_cache=True))

    def evict_cache(self, slice_id: int, slice_size: int) -> None:
        for key in self.keys(slice_id, slice_size):
            self.cache.remove(key)
            if self.disk is not None:
                self.disk.remove(key)

    def remove(self, slice_id: int, slice_size: int) -> None:
        """Delete every block object of a slice (deleting a missing one succeeds). Tries them all;
        raises the last failure."""
        keys = self.keys(slice_id, slice_size)
        for key in keys:
            self.forget_block(key)
        err: StorageError | None = None
        for key in keys:
            try:
                self.storage.delete(key)
            except ObjectNotFound:
                pass
            except StorageError as e:
                log.warning("delete %s: %s", key, e)
                err = e
        if err is not None:
            raise err

    def close(self) -> None:
        """Wait for running uploads and stop the thread pools; staged blocks not uploaded yet stay
        on disk for the next mount; queued cache writes are written."""
        self._uploads.shutdown(wait=True)
        self._downloads.shutdown(wait=True, cancel_futures=True)
        if self.stager is not None:
            self.stager.close()
        if self.disk is not None:
            self.disk.close()

    def __enter__(self) -> "ChunkStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def zeros(n: int) -> bytes:
    """What a hole (slice id 0) reads as."""
    return bytes(n)


class SliceWriter:
    """Buffers one new slice and uploads its blocks. Not thread-safe: the caller (the file writer,
    under its lock) drives one writer from one thread at a time; upload threads only see the
    immutable bytes of a block and the `_failed` event.

    Bytes below `uploaded` are handed to the upload pool and may no longer change.
    """

    def __init__(self, store: ChunkStore, slice_id: int) -> None:
        self.store = store
        self.id = slice_id
        self.length = 0
        self.uploaded = 0
        self._blocks: dict[int, bytearray] = {}
        self._pending: list[tuple[str, Future[None]]] = []
        self._failed = threading.Event()
        self._error: BaseException | None = None

    @property
    def pending_bytes(self) -> int:
        """Bytes written but not yet handed to an upload."""
        return self.length - self.uploaded

    def write_at(self, data: bytes | bytearray | memoryview, off: int) -> int:
        """Write data at slice offset off; a gap after the current end is filled with zeros."""
        n = len(data)
        if off < 0 or off + n > CHUNK_SIZE:
            raise ValueError(f"write [{off}, {off + n}) out of the chunk boundary {CHUNK_SIZE}")
        if off < self.uploaded:
            raise ValueError(f"cannot overwrite uploaded block: {off} < {self.uploaded}")
        if off > self.length:
            self.write_at(bytes(off - self.length), self.length)
        bs = self.store.block_size
        src = memoryview(data).cast("B")
        done = 0
        while done < n:
            indx, boff = divmod(off + done, bs)
            k = min(n - done, bs - boff)
            buf = self._blocks.get(indx)
            if buf is None:
                buf = self._blocks[indx] = bytearray()
            if len(buf) < boff:
                buf.extend(bytes(boff - len(buf)))
            # One copy: the assignment also grows the buffer when the range runs past its end.
            buf[boff:boff + k] = src[done:done + k]
            done += k
        self.length = max(self.length, off + n)
        return n

    def flush_to(self, offset: int) -> None:
        """Hand every block that lies entirely below `offset` (and is fully written) to the upload
        pool. Unlike JuiceFS, `uploaded` never passes the written length, so a later write after a
        gap can still zero-fill it."""
        if offset < self.uploaded:
            raise ValueError(f"invalid flush offset: {offset} < {self.uploaded}")
        self._upload_blocks(min(offset, self.length) // self.store.block_size)

    def _upload_blocks(self, upto: int) -> None:
        """Upload blocks [uploaded / block size, upto)."""
        bs = self.store.block_size
        for indx in range(self.uploaded // bs, upto):
            if indx in self._blocks:
                self._start_upload(indx)
            self.uploaded = min((indx + 1) * bs, self.length)

    def _start_upload(self, indx: int) -> None:
        store = self.store
        blen = block_size_at(self.length, indx, store.block_size)
        # The buffer itself is uploaded (no copy): it leaves _blocks, so nothing writes to it again.
        block = self._blocks.pop(indx)
        if len(block) != blen:
            raise RuntimeError(f"block {indx} of slice {self.id} holds {len(block)} bytes, expected {blen}")
        key = block_key(self.id, indx, blen, store.hash_prefix)
        fut = store._uploads.submit(store._upload, key, block, self._failed.is_set)
        self._pending.append((key, fut))

    def finish(self, length: int) -> None:
        """Upload the rest and return once every block is stored; raise StorageError otherwise
        (the remaining uploads are cancelled; call abort() to delete what was stored)."""
        if length != self.length:
            raise ValueError(f"length mismatch: {self.length} != {length}")
        if self._error is not None:
            raise self._error
        if length > 0:
            self._upload_blocks((length - 1) // self.store.block_size + 1)
        first: BaseException | None = None
        for _key, fut in self._pending:
            exc = fut.exception()  # waits: nothing lands after finish() returns
            if exc is not None and first is None:
                first = exc
                self._failed.set()
        if first is not None:
            self._error = first if isinstance(first, StorageError) else StorageError(str(first))
            raise self._error

    def abort(self) -> None:
        """Drop buffered data, stop queued uploads, and delete the blocks already stored."""
        self._blocks.clear()
        self._failed.set()
        for _key, fut in self._pending:
            fut.cancel()
        keys = []
        for key, fut in self._pending:
            if not fut.cancelled():
                fut.exception()  # wait for a running PUT before deleting its object
            keys.append(key)
        for key in keys:
            self.store.forget_block(key)
            try:
                self.store.storage.delete(key)
            except StorageError as e:
                log.warning("abort slice %d: delete %s: %s", self.id, key, e)
        self._pending.clear()
        self.length = self.uploaded
