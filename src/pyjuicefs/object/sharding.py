"""`--shards N`: objects spread over N buckets named by a `%d` pattern (pkg/object/sharding.go).

A key lives in shard fnv32a(key) % N, where the key is the full object name including the volume
prefix (JuiceFS wraps the sharded store with the prefix). Listings merge the shards in key order.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterator
from typing import BinaryIO

from ..errors import UserError
from .base import ObjectInfo, ObjectStorage

_FNV32_OFFSET = 0x811C9DC5
_FNV32_PRIME = 0x01000193
_VERB = re.compile(r"%(%|[-+ #0]*\d*d)")


def fnv32a(data: bytes) -> int:
    h = _FNV32_OFFSET
    for b in data:
        h = ((h ^ b) * _FNV32_PRIME) & 0xFFFFFFFF
    return h


def shard_index(key: str, shards: int) -> int:
    return fnv32a(key.encode()) % shards


def shard_name(pattern: str, i: int) -> str:
    """The bucket of shard i: Go's fmt.Sprintf(pattern, i) for the `%d` verbs JuiceFS users write."""
    used = False

    def sub(m: re.Match) -> str:
        nonlocal used
        if m[1] == "%":
            return "%"
        if used:
            raise UserError(f"bucket {pattern!r} must contain exactly one %d for --shards")
        used = True
        spec = m[1][:-1]
        return format(i, spec.replace("#", "") + "d") if spec else str(i)

    out = _VERB.sub(sub, pattern)
    if not used:
        raise UserError(f"can not generate different buckets using {pattern!r}: "
                        "with --shards the bucket must contain a %d pattern, e.g. /var/jfs/vol-%d")
    return out


class ShardedStorage(ObjectStorage):
    def __init__(self, stores: list[ObjectStorage]) -> None:
        if not stores:
            raise ValueError("no shards")
        self.stores = stores

    def __str__(self) -> str:
        return f"shard{len(self.stores)}://{self.stores[0]}"

    def pick(self, key: str) -> ObjectStorage:
        return self.stores[shard_index(key, len(self.stores))]

    def create(self) -> None:
        for s in self.stores:
            s.create()

    def put(self, key: str, data: bytes | BinaryIO) -> None:
        self.pick(key).put(key, data)

    def get(self, key: str, off: int = 0, limit: int = -1) -> bytes:
        return self.pick(key).get(key, off, limit)

    def head(self, key: str) -> ObjectInfo:
        return self.pick(key).head(key)

    def delete(self, key: str) -> None:
        self.pick(key).delete(key)

    def list(self, prefix: str = "", start_after: str = "", limit: int = 1000) -> list[ObjectInfo]:
        # The first `limit` of the union are among the first `limit` of each shard.
        pages = [s.list(prefix, start_after, limit) for s in self.stores]
        merged = heapq.merge(*pages, key=lambda o: o.key)
        return [o for _, o in zip(range(limit), merged)]

    def list_all(self, prefix: str = "", start_after: str = "") -> Iterator[ObjectInfo]:
        return heapq.merge(*(s.list_all(prefix, start_after) for s in self.stores), key=lambda o: o.key)

    def close(self) -> None:
        for s in self.stores:
            s.close()
