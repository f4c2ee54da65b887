"""What a mount reports about itself: `.stats` (JuiceFS's flattened text, see metrics.py) and the
Prometheus text of `--metrics`, from the process-wide registry plus the figures of this volume
computed when read (cache and staging counts, open handles, buffers, used space).

CountingStorage is the object-storage layer of the metrics: every GET/PUT/DELETE/HEAD/LIST the
chunk store makes is timed into `juicefs_object_request_*` (and counted per Stats, which unit
tests read)."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, BinaryIO

from .. import metrics
from ..object.base import ObjectInfo, ObjectStorage

if TYPE_CHECKING:
    from .vfs import VFS

log = logging.getLogger(__name__)


class Stats:
    """The metrics of one volume. Creating one turns the process's metrics on."""

    def __init__(self) -> None:
        metrics.enable()
        self._lock = threading.Lock()  # guards the per-Stats object counters
        self.objects: Counter[str] = Counter()  # method -> requests (read by tests)
        self.object_bytes: Counter[str] = Counter()
        self.object_errors: Counter[str] = Counter()
        self.started = time.time()
        self._sources: list[Callable[[], dict[str, float]]] = []  # more samples, full names
        self._vfs: VFS | None = None

    def add_source(self, fn: Callable[[], dict[str, float]]) -> None:
        """Samples computed when read (e.g. the chunk store's cache figures), by full metric name
        (`juicefs_blockcache_hits`, `pyjuicefs_staging_blocks`)."""
        self._sources.append(fn)

    def attach(self, vfs: VFS) -> None:
        """Report this VFS's gauges (handles, buffers, used space and inodes) also to scrapes of
        the HTTP endpoint, which come without the VFS asking."""
        self._vfs = vfs

    # --- hooks of the VFS ------------------------------------------------------------------------
    def add_read(self, n: int) -> None:
        metrics.fuse_read(n)

    def add_written(self, n: int) -> None:
        metrics.fuse_written(n)

    def add_object(self, method: str, nbytes: int = 0, failed: bool = False, seconds: float = 0.0) -> None:
        metrics.object_request(method, seconds, nbytes, failed)
        with self._lock:
            self.objects[method] += 1
            self.object_bytes[method] += nbytes
            if failed:
                self.object_errors[method] += 1

    # --- rendering ---------------------------------------------------------------------------------
    def samples(self, gauges: dict[str, float] | None = None) -> dict[str, float]:
        """The figures computed now: sources, the attached VFS's gauges, then `gauges` (names
        without the `juicefs_` prefix, as VFS._stats_text passes them)."""
        out: dict[str, float] = {}
        for fn in self._sources:
            try:
                out.update(fn())
            except Exception as e:  # noqa: BLE001 - one failing figure must not hide the others
                log.debug("metrics source: %s", e)
        if self._vfs is not None:
            out.update(vfs_gauges(self._vfs))
        for name, value in (gauges or {}).items():
            out["juicefs_" + name] = value
        return out

    def prometheus(self, gauges: dict[str, float] | None = None) -> bytes:
        """The text of `.stats` (JuiceFS's collectMetrics format)."""
        extra = self.samples(gauges)
        reg = metrics.registry()
        if reg is None:  # prometheus-client missing: only the figures computed here
            extra.update(metrics.process_samples())
            return "".join(f"{k} {metrics.go_f(extra[k])}\n" for k in sorted(extra)).encode()
        return reg.stats_text(extra)

    def exposition(self, const_labels: dict[str, str]) -> bytes:
        """The Prometheus text of the HTTP endpoint."""
        reg = metrics.registry()
        if reg is None:
            return b""
        return reg.prometheus_text(const_labels, self.samples())


def vfs_gauges(vfs: VFS) -> dict[str, float]:
    """JuiceFS's VFS and meta gauges of a volume (used space as statfs reports it)."""
    out: dict[str, float] = {}
    with vfs._hlock:
        out["juicefs_fuse_open_handlers"] = len(vfs._handles)
    out["juicefs_used_buffer_size_bytes"] = vfs.writer.buffered
    out["juicefs_used_read_buffer_size_bytes"] = vfs.reader.used
    cache = getattr(vfs.store, "cache", None)
    out["juicefs_store_cache_size_bytes"] = getattr(cache, "used", 0) or 0
    try:
        st = vfs.meta.statfs()
        out.update({"juicefs_used_space": st.total - st.avail, "juicefs_used_inodes": st.iused,
                    "juicefs_total_space": st.total, "juicefs_total_inodes": st.iused + st.iavail})
    except Exception as e:  # noqa: BLE001 - the engine may be briefly unreachable
        log.debug("metrics statfs: %s", e)
    return out


class CountingStorage(ObjectStorage):
    """Times the requests the chunk store makes (GET/PUT/DELETE/HEAD/LIST) into Stats and the
    `juicefs_object_request_*` metrics. It sits on top of the retrying store, as JuiceFS's chunk
    store measures its own requests: one observation per request, retries included."""

    def __init__(self, store: ObjectStorage, stats: Stats) -> None:
        self.store = store
        self.stats = stats

    def __str__(self) -> str:
        return str(self.store)

    def _count(self, method: str, fn: Callable[[], object], nbytes: Callable[[object], int] = lambda r: 0):
        t0 = time.perf_counter()
        try:
            r = fn()
        except Exception:
            self.stats.add_object(method, 0, failed=True)
            raise
        self.stats.add_object(method, nbytes(r), seconds=time.perf_counter() - t0)
        return r

    def create(self) -> None:
        self.store.create()

    def put(self, key: str, data: bytes | BinaryIO) -> None:
        n = len(data) if isinstance(data, (bytes, bytearray, memoryview)) else 0
        metrics.uploading(1)
        try:
            self._count("PUT", lambda: self.store.put(key, data), lambda _r: n)
        finally:
            metrics.uploading(-1)

    def get(self, key: str, off: int = 0, limit: int = -1) -> bytes:
        return self._count("GET", lambda: self.store.get(key, off, limit), len)

    def head(self, key: str) -> ObjectInfo:
        return self._count("HEAD", lambda: self.store.head(key))

    def delete(self, key: str) -> None:
        self._count("DELETE", lambda: self.store.delete(key))

    def list(self, prefix: str = "", start_after: str = "", limit: int = 1000) -> list[ObjectInfo]:
        return self._count("LIST", lambda: self.store.list(prefix, start_after, limit))

    def list_all(self, prefix: str = "", start_after: str = "") -> Iterator[ObjectInfo]:
        return self.store.list_all(prefix, start_after)

    def close(self) -> None:
        self.store.close()
