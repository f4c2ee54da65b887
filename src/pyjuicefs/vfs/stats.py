"""Counters the VFS keeps for `.stats` (Prometheus text, as JuiceFS's CollectMetrics prints it:
one `name value` line per sample, histograms as `<name>_total` and `<name>_sum`)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import BinaryIO

from ..object.base import ObjectInfo, ObjectStorage


class Stats:
    """Thread-safe counters; one lock, held only to add."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.ops: Counter[str] = Counter()  # fuse operation -> calls
        self.op_seconds: Counter[str] = Counter()
        self.read = [0, 0]  # [calls, bytes]
        self.written = [0, 0]
        self.objects: Counter[str] = Counter()  # method -> requests
        self.object_bytes: Counter[str] = Counter()  # method -> bytes moved
        self.object_errors: Counter[str] = Counter()
        self.started = time.time()
        self._sources: list[Callable[[], dict[str, float]]] = []  # more samples, full names

    def add_source(self, fn: Callable[[], dict[str, float]]) -> None:
        """Samples computed when `.stats` is read (e.g. the chunk store's cache figures), by full
        metric name (`juicefs_blockcache_hits`, `pyjuicefs_staging_blocks`)."""
        self._sources.append(fn)

    def op(self, name: str, seconds: float) -> None:
        with self._lock:
            self.ops[name] += 1
            self.op_seconds[name] += seconds

    def add_read(self, n: int) -> None:
        with self._lock:
            self.read[0] += 1
            self.read[1] += n

    def add_written(self, n: int) -> None:
        with self._lock:
            self.written[0] += 1
            self.written[1] += n

    def add_object(self, method: str, nbytes: int = 0, failed: bool = False) -> None:
        with self._lock:
            self.objects[method] += 1
            self.object_bytes[method] += nbytes
            if failed:
                self.object_errors[method] += 1

    def prometheus(self, gauges: dict[str, float]) -> bytes:
        """The text of `.stats`: counters plus the gauges given (name without the prefix)."""
        p = "juicefs_"
        lines: list[str] = []
        with self._lock:
            total = sum(self.ops.values())
            secs = sum(self.op_seconds.values())
            lines.append(f"{p}fuse_ops_durations_histogram_seconds_total {total}")
            lines.append(f"{p}fuse_ops_durations_histogram_seconds_sum {_num(secs)}")
            for name in sorted(self.ops):
                lines.append(f"{p}fuse_ops_durations_histogram_seconds_{name}_total {self.ops[name]}")
                lines.append(f"{p}fuse_ops_durations_histogram_seconds_{name}_sum {_num(self.op_seconds[name])}")
            lines.append(f"{p}fuse_read_size_bytes_total {self.read[0]}")
            lines.append(f"{p}fuse_read_size_bytes_sum {self.read[1]}")
            lines.append(f"{p}fuse_written_size_bytes_total {self.written[0]}")
            lines.append(f"{p}fuse_written_size_bytes_sum {self.written[1]}")
            for m in sorted(self.objects):
                lines.append(f"{p}object_request_durations_histogram_seconds_{m}_total {self.objects[m]}")
                lines.append(f"{p}object_request_data_bytes_{m} {self.object_bytes[m]}")
            for m in sorted(self.object_errors):
                lines.append(f"{p}object_request_errors_{m} {self.object_errors[m]}")
            lines.append(f"{p}uptime {_num(time.time() - self.started)}")
        for name in sorted(gauges):
            lines.append(f"{p}{name} {_num(gauges[name])}")
        for fn in self._sources:
            samples = fn()
            for name in sorted(samples):
                lines.append(f"{name} {_num(samples[name])}")
        return ("\n".join(lines) + "\n").encode()


def _num(v: float) -> str:
    """A number as Go's strconv.FormatFloat(v, 'f', -1, 64) prints it."""
    if float(v).is_integer():
        return str(int(v))
    return repr(float(v))


class CountingStorage(ObjectStorage):
    """Counts the requests the chunk store makes (GET/PUT/DELETE/HEAD/LIST) into Stats."""

    def __init__(self, store: ObjectStorage, stats: Stats) -> None:
        self.store = store
        self.stats = stats

    def __str__(self) -> str:
        return str(self.store)

    def _count(self, method: str, fn: Callable[[], object], nbytes: Callable[[object], int] = lambda r: 0):
        try:
            r = fn()
        except Exception:
            self.stats.add_object(method, 0, failed=True)
            raise
        self.stats.add_object(method, nbytes(r))
        return r

    def create(self) -> None:
        self.store.create()

    def put(self, key: str, data: bytes | BinaryIO) -> None:
        n = len(data) if isinstance(data, (bytes, bytearray, memoryview)) else 0
        self._count("PUT", lambda: self.store.put(key, data), lambda _r: n)

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
