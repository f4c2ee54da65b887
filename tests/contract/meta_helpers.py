"""Helpers of the metadata contract suite (tests/contract/test_meta*.py)."""

from __future__ import annotations

import errno
import uuid
from contextlib import contextmanager

import pytest

from pyjuicefs.format import Format
from pyjuicefs.meta.base_common import Context
from pyjuicefs.meta.types import Slice

KINDS = ["memkv", "sqlite3", "redis", "postgres", "mysql", "etcd"]
ROOT = 1
ALICE = Context(uid=1000, gid=1000, gids=(1000, 2000))
BOB = Context(uid=1001, gid=1001)


def new_format(**kw) -> Format:
    kw.setdefault("Name", "contract")
    kw.setdefault("UUID", str(uuid.uuid4()))
    kw.setdefault("Storage", "file")
    kw.setdefault("Bucket", "/tmp/contract-bucket/")
    kw.setdefault("TrashDays", 0)
    return Format(**kw)


@contextmanager
def raises_errno(code: int):
    with pytest.raises(OSError) as ei:
        yield ei
    assert ei.value.errno == code, f"expected {errno.errorcode[code]}, got {ei.value!r}"


def sl(id_: int, size: int, off: int = 0, length: int | None = None) -> Slice:
    """A slice to write (its pos is given to write() apart)."""
    return Slice(0, id_, size, off, size - off if length is None else length)


def layout(slices: list[Slice]) -> list[tuple[int, int, int, int]]:
    """(pos, id, off, len) of what read() returns, for compact assertions."""
    return [(s.pos, s.id, s.off, s.len) for s in slices]
