"""Retrying transient storage errors (`--io-retries`, default 10).

Only TransientStorageError is retried (timeouts, resets, 5xx, throttling); a missing object, a
rejected key or any other StorageError is final. Waits grow exponentially with full jitter up to a
cap. The first retry of an operation is logged at WARNING, later ones at DEBUG, so a flapping store
tells the user once per failing call without flooding the log.
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable
from typing import BinaryIO, TypeVar

from ..errors import StorageError, TransientStorageError
from .base import ObjectInfo, ObjectStorage

log = logging.getLogger(__name__)
T = TypeVar("T")


class Backoff:
    """Delay before retry n (0-based): uniform(0, min(cap, base * 2**n)). `sleep` is injectable."""

    def __init__(self, base: float = 0.1, cap: float = 10.0, sleep: Callable[[float], None] = time.sleep,
                 rand: Callable[[], float] = random.random) -> None:
        self.base, self.cap, self.sleep, self.rand = base, cap, sleep, rand

    def delay(self, n: int) -> float:
        return self.rand() * min(self.cap, self.base * (2 ** min(n, 32)))

    def wait(self, n: int) -> None:
        d = self.delay(n)
        if d > 0:
            self.sleep(d)


def call_with_retry(fn: Callable[[], T], what: str, retries: int, backoff: Backoff,
                    before_retry: Callable[[], None] | None = None) -> T:
    """fn() up to 1 + retries times while it raises TransientStorageError."""
    n = 0
    while True:
        try:
            return fn()
        except TransientStorageError as e:
            if n >= retries:
                if retries:
                    log.debug("%s: giving up after %d tries", what, n + 1)
                raise
            level = logging.WARNING if n == 0 else logging.DEBUG
            log.log(level, "%s failed (try %d of %d), retrying: %s", what, n + 1, retries + 1, e)
            backoff.wait(n)
            if before_retry is not None:
                before_retry()
            n += 1


def retried(what: str, retries: int = 10, backoff: Backoff | None = None):
    """Decorator form of call_with_retry for a function of no special arguments."""
    bo = backoff or Backoff()

    def deco(fn: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(fn)
        def wrapper(*a, **kw) -> T:
            return call_with_retry(lambda: fn(*a, **kw), what, retries, bo)
        return wrapper
    return deco


class RetryingStorage(ObjectStorage):
    def __init__(self, store: ObjectStorage, retries: int = 10, backoff: Backoff | None = None) -> None:
        self.store = store
        self.retries = max(0, retries)
        self.backoff = backoff or Backoff()

    def __str__(self) -> str:
        return str(self.store)

    def _call(self, what: str, fn: Callable[[], T], before_retry: Callable[[], None] | None = None) -> T:
        return call_with_retry(fn, what, self.retries, self.backoff, before_retry)

    def create(self) -> None:
        self._call(f"create {self.store}", self.store.create)

    def put(self, key: str, data: bytes | BinaryIO) -> None:
        rewind = None
        if not isinstance(data, (bytes, bytearray, memoryview)):
            try:
                pos = data.tell() if data.seekable() else None
            except (AttributeError, OSError):
                pos = None
            if pos is None:
                # A stream we cannot rewind is tried once.
                self.store.put(key, data)
                return

            def rewind() -> None:
                try:
                    data.seek(pos)
                except (OSError, ValueError) as e:
                    raise StorageError(f"put {key}: cannot rewind the data to retry: {e}") from None
        self._call(f"put {key}", lambda: self.store.put(key, data), rewind)

    def get(self, key: str, off: int = 0, limit: int = -1) -> bytes:
        return self._call(f"get {key}", lambda: self.store.get(key, off, limit))

    def head(self, key: str) -> ObjectInfo:
        return self._call(f"head {key}", lambda: self.store.head(key))

    def delete(self, key: str) -> None:
        self._call(f"delete {key}", lambda: self.store.delete(key))

    def list(self, prefix: str = "", start_after: str = "", limit: int = 1000) -> list[ObjectInfo]:
        return self._call(f"list {prefix!r}", lambda: self.store.list(prefix, start_after, limit))

    def close(self) -> None:
        self.store.close()
