"""Bandwidth limits (--upload-limit / --download-limit) and the memory allocator setting that lets
--buffer-size bound the process's memory.

TokenBucket follows the bucket JuiceFS uses (juju/ratelimit, NewBucketWithRate(limit·0.85, limit)):
it fills at `rate` bytes/s up to `capacity`; taking more than is there puts it in debt and the
taker sleeps until the debt would be paid, so a big block never deadlocks a small bucket.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
import time

log = logging.getLogger(__name__)


class TokenBucket:
    def __init__(self, rate: float, capacity: float | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = float(rate)
        self.capacity = float(capacity if capacity is not None else rate)
        self._tokens = self.capacity
        self._stamp = time.monotonic()
        self._lock = threading.Lock()

    @classmethod
    def for_limit(cls, bytes_per_second: int) -> "TokenBucket | None":
        """JuiceFS's bucket for a limit (85 % of it as the fill rate, for protocol overheads)."""
        if bytes_per_second <= 0:
            return None
        return cls(bytes_per_second * 0.85, bytes_per_second)

    def take(self, n: int) -> float:
        """Take n tokens now; returns how long the caller must wait for them."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= n
            return -self._tokens / self.rate if self._tokens < 0 else 0.0

    def wait(self, n: int) -> None:
        delay = self.take(n)
        if delay > 0:
            time.sleep(delay)


def mbps_to_bytes(mbps: float) -> int:
    """JuiceFS: limit (Mbps) * 1e6 / 8 bytes per second."""
    return int(mbps * 1e6 / 8)


_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_tuned = False


def tune_malloc(threshold: int = 1 << 20) -> bool:
    """Have glibc serve every allocation of `threshold` bytes or more with its own mmap, given
    back to the system when freed. By default glibc raises that threshold up to 32 MiB once big
    blocks are freed, and then keeps freed 4 MiB blocks in its heap, where fragmentation lets the
    resident size grow far past the bytes in use. Idempotent; False where it is not glibc."""
    global _tuned
    if _tuned:
        return True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = bool(mallopt(_M_MMAP_THRESHOLD, threshold)) and bool(mallopt(_M_TRIM_THRESHOLD, threshold * 2))
    _tuned = ok
    if not ok:
        log.debug("mallopt failed: memory use may exceed the buffer size")
    return ok
