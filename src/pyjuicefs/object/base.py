"""The object storage contract: one small interface that every store implements.

Keys are str ('myjfs/chunks/0/0/1_0_4194304'); data is bytes or a binary file object.
Every store passes tests/contract/test_object.py.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO


@dataclass(slots=True, frozen=True)
class ObjectInfo:
    key: str
    size: int
    mtime: float  # unix seconds
    is_dir: bool = False


class ObjectStorage(ABC):
    """A bucket. Errors: ObjectNotFound for a missing key or bucket, StorageAuthError for
    rejected credentials, TransientStorageError for what a retry may fix, StorageError otherwise."""

    @abstractmethod
    def __str__(self) -> str:
        """Description for logs: 'file:///var/jfs/', 's3://bucket/' — never with credentials."""

    def create(self) -> None:
        """Create the bucket if missing; succeed if it already exists."""

    @abstractmethod
    def put(self, key: str, data: bytes | BinaryIO) -> None:
        """Store an object atomically (readers see the old or the new whole object)."""

    @abstractmethod
    def get(self, key: str, off: int = 0, limit: int = -1) -> bytes:
        """Bytes [off, off+limit) of the object (limit -1: to the end)."""

    @abstractmethod
    def head(self, key: str) -> ObjectInfo:
        """Raises ObjectNotFound if the key does not exist."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Idempotent: deleting a missing key succeeds."""

    @abstractmethod
    def list(self, prefix: str = "", start_after: str = "", limit: int = 1000) -> list[ObjectInfo]:
        """Up to `limit` objects with key > start_after and starting with prefix, sorted by key."""

    def list_all(self, prefix: str = "", start_after: str = "") -> Iterator[ObjectInfo]:
        """Every object under prefix, paging through list()."""
        while True:
            page = self.list(prefix, start_after, 1000)
            yield from page
            if len(page) < 1000:
                return
            start_after = page[-1].key

    def close(self) -> None:
        """Release connections."""
