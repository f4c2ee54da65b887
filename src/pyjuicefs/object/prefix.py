"""Every key under a fixed prefix: JuiceFS keeps a volume's objects under `<volume name>/`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import BinaryIO

from .base import ObjectInfo, ObjectStorage


class WithPrefix(ObjectStorage):
    def __init__(self, store: ObjectStorage, prefix: str) -> None:
        self.store = store
        self.prefix = prefix

    def __str__(self) -> str:
        return f"{self.store}{self.prefix}"

    def create(self) -> None:
        self.store.create()

    def put(self, key: str, data: bytes | BinaryIO) -> None:
        self.store.put(self.prefix + key, data)

    def get(self, key: str, off: int = 0, limit: int = -1) -> bytes:
        return self.store.get(self.prefix + key, off, limit)

    def head(self, key: str) -> ObjectInfo:
        return replace(self.store.head(self.prefix + key), key=key)

    def delete(self, key: str) -> None:
        self.store.delete(self.prefix + key)

    def _strip(self, infos) -> Iterator[ObjectInfo]:
        n = len(self.prefix)
        for o in infos:
            yield replace(o, key=o.key[n:])

    def list(self, prefix: str = "", start_after: str = "", limit: int = 1000) -> list[ObjectInfo]:
        sa = self.prefix + start_after if start_after else ""
        return list(self._strip(self.store.list(self.prefix + prefix, sa, limit)))

    def list_all(self, prefix: str = "", start_after: str = "") -> Iterator[ObjectInfo]:
        sa = self.prefix + start_after if start_after else ""
        return self._strip(self.store.list_all(self.prefix + prefix, sa))

    def close(self) -> None:
        self.store.close()
