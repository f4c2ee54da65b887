"""An in-memory block cache (LRU by bytes) and a singleflight group.

Both are keyed by block object name. Block objects are immutable (a slice id is never reused and
its name carries the block length), so a cached block is never stale: no invalidation besides
eviction and removal of deleted slices.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class BlockCache:
    """Whole uncompressed blocks, least recently used evicted first once over `capacity` bytes.

    One lock (`_lock`) guards the dict and the byte count; it is held only for dict operations,
    never during I/O. capacity 0 disables the cache.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._lock = threading.Lock()
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._used = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> bytes | None:
        with self._lock:
            data = self._items.get(key)
            if data is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return data

    def put(self, key: str, data: bytes) -> None:
        if self.capacity <= 0 or len(data) > self.capacity:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._used -= len(old)
            self._items[key] = data
            self._used += len(data)
            while self._used > self.capacity:
                _, ev = self._items.popitem(last=False)
                self._used -= len(ev)

    def remove(self, key: str) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._used -= len(old)

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    @property
    def used(self) -> int:
        with self._lock:
            return self._used


class _Call(Generic[T]):
    __slots__ = ("done", "value", "error")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: T | None = None
        self.error: BaseException | None = None


class SingleFlight(Generic[T]):
    """Concurrent do(key, fn) calls for one key run fn once; the others wait and share its result
    (or its exception). `_lock` guards the in-flight map only; fn runs without it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[str, _Call[T]] = {}
        self.executions = 0  # how many times some fn actually ran (for tests and stats)

    def do(self, key: str, fn: Callable[[], T]) -> T:
        with self._lock:
            call = self._calls.get(key)
            leader = call is None
            if leader:
                call = self._calls[key] = _Call()
                self.executions += 1
        assert call is not None
        if not leader:
            return self._wait(call)
        try:
            call.value = fn()
        except BaseException as e:
            call.error = e
            raise
        finally:
            with self._lock:
                del self._calls[key]
            call.done.set()
        return call.value

    def piggyback(self, key: str) -> tuple[bool, T | None]:
        """(True, result) by waiting for a call in flight for key; (False, None) if there is none.
        Raises the in-flight call's exception."""
        with self._lock:
            call = self._calls.get(key)
        if call is None:
            return False, None
        return True, self._wait(call)

    @staticmethod
    def _wait(call: _Call[T]) -> T:
        call.done.wait()
        if call.error is not None:
            raise call.error
        return call.value  # type: ignore[return-value]
