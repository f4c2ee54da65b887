"""An in-memory bucket for tests (`--storage mem`). Thread-safe.

Stores made with the same non-empty name share their objects within the process, so a volume
formatted with `--storage mem --bucket X` can be opened again by name (JuiceFS's mem store lives
only as long as the process too).
"""

from __future__ import annotations

import bisect
import threading
import time
from typing import BinaryIO

from ..errors import ObjectNotFound
from .base import ObjectInfo, ObjectStorage
from .file import check_key


class _Bucket:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.objects: dict[str, tuple[bytes, float]] = {}
        self.keys: list[str] = []  # sorted, for list()


_named: dict[str, _Bucket] = {}
_named_lock = threading.Lock()


class MemStorage(ObjectStorage):
    def __init__(self, name: str = "") -> None:
        self.name = name
        if name:
            with _named_lock:
                self._b = _named.setdefault(name, _Bucket())
        else:
            self._b = _Bucket()

    @staticmethod
    def drop(name: str) -> None:
        """Forget the objects of a named bucket."""
        with _named_lock:
            _named.pop(name, None)

    def __str__(self) -> str:
        return f"mem://{self.name}/"

    def put(self, key: str, data: bytes | BinaryIO) -> None:
        check_key(key)
        body = bytes(data) if isinstance(data, (bytes, bytearray, memoryview)) else data.read()
        b = self._b
        with b.lock:
            if key not in b.objects:
                bisect.insort(b.keys, key)
            b.objects[key] = (body, time.time())

    def get(self, key: str, off: int = 0, limit: int = -1) -> bytes:
        if off < 0:
            raise ValueError(f"negative offset {off}")
        with self._b.lock:
            obj = self._b.objects.get(key)
        if obj is None:
            raise ObjectNotFound(f"{self}{key}: no such object")
        body = obj[0]
        return body[off:] if limit < 0 else body[off:off + limit]

    def head(self, key: str) -> ObjectInfo:
        with self._b.lock:
            obj = self._b.objects.get(key)
        if obj is None:
            raise ObjectNotFound(f"{self}{key}: no such object")
        return ObjectInfo(key, len(obj[0]), obj[1])

    def delete(self, key: str) -> None:
        b = self._b
        with b.lock:
            if b.objects.pop(key, None) is not None:
                del b.keys[bisect.bisect_left(b.keys, key)]

    def list(self, prefix: str = "", start_after: str = "", limit: int = 1000) -> list[ObjectInfo]:
        b = self._b
        out: list[ObjectInfo] = []
        with b.lock:
            i = bisect.bisect_right(b.keys, start_after) if start_after >= prefix else bisect.bisect_left(b.keys, prefix)
            while i < len(b.keys) and len(out) < limit:
                k = b.keys[i]
                if not k.startswith(prefix):
                    break
                body, mtime = b.objects[k]
                out.append(ObjectInfo(k, len(body), mtime))
                i += 1
        return out
