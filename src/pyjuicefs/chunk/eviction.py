"""The index of one disk cache directory: block key -> (size, atime), with JuiceFS's eviction
policies (pkg/chunk/cache_eviction.go): `none` (never evict), `2-random` (of two random blocks,
evict the less recently used one), `lru` (least recently used first).

A negative size marks a *staging* block (written back, not uploaded yet): it is never evicted
and only removed when asked explicitly. Not thread-safe: the cache store's lock guards it.
"""

from __future__ import annotations

import random
import time
from collections import OrderedDict
from collections.abc import Iterator


class Entry:
    __slots__ = ("size", "atime")

    def __init__(self, size: int, atime: float) -> None:
        self.size = size
        self.atime = atime


class KeyIndex:
    def __init__(self, policy: str) -> None:
        if policy not in ("none", "2-random", "lru"):
            raise ValueError(f"unknown cache eviction policy {policy!r}")
        self.policy = policy
        # insertion order = access order for lru (move_to_end on every touch)
        self.items: OrderedDict[str, Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, key: str) -> bool:
        return key in self.items

    def add(self, key: str, size: int, atime: float | None = None) -> Entry | None:
        """Add or update a key; returns the previous entry. An update keeps the old atime
        (atime moves only on access), as JuiceFS."""
        old = self.items.get(key)
        if old is None:
            self.items[key] = Entry(size, time.time() if atime is None else atime)
            return None
        prev = Entry(old.size, old.atime)
        old.size = size
        return prev

    def touch(self, key: str) -> Entry | None:
        """The entry of key with its atime set to now (an access), or None."""
        e = self.items.get(key)
        if e is not None:
            e.atime = time.time()
            if self.policy == "lru":
                self.items.move_to_end(key)
        return e

    def peek(self, key: str) -> Entry | None:
        return self.items.get(key)

    def remove(self, key: str, staging: bool = False) -> Entry | None:
        """Drop key; a staging entry only when `staging` is set."""
        e = self.items.get(key)
        if e is None or (e.size < 0 and not staging):
            return None
        del self.items[key]
        return e

    def sort_by_atime(self) -> None:
        """Re-order after a scan loaded entries in directory order (lru evicts from the front)."""
        self.items = OrderedDict(sorted(self.items.items(), key=lambda kv: kv[1].atime))

    def victims(self, expire_before: float = 0.0) -> Iterator[tuple[str, Entry]]:
        """Remove and yield entries in eviction order until the caller stops; staging entries are
        never yielded. `none` yields nothing."""
        if self.policy == "none":
            return
        if self.policy == "lru":
            for key in [k for k, e in self.items.items() if e.size >= 0]:
                e = self.items.pop(key, None)
                if e is not None:
                    yield key, e
            return
        # 2-random: shuffle once, then take pairs; expired blocks go first, without a pair.
        keys = [k for k, e in self.items.items() if e.size >= 0]
        random.shuffle(keys)
        last: str | None = None
        for key in keys:
            e = self.items.get(key)
            if e is None or e.size < 0:
                continue
            if expire_before and e.atime < expire_before:
                del self.items[key]
                yield key, e
                continue
            if last is None:
                last = key
                continue
            le = self.items.get(last)
            if le is None:
                last = key
                continue
            victim = last if le.atime <= e.atime else key
            last = None
            ve = self.items.pop(victim)
            yield victim, ve
        if last is not None and last in self.items and len(keys) == 1:
            yield last, self.items.pop(last)  # a single evictable block: nothing to compare with

    def expired(self, before: float) -> list[str]:
        """Keys of blocks not accessed since `before` (cache-expire), staging excluded."""
        return [k for k, e in self.items.items() if e.size >= 0 and e.atime < before]
