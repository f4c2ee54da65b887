"""Helpers of the VFS tests (tests/vfs): volumes, files, errno checks."""

from __future__ import annotations

import errno
import os
import uuid
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

from pyjuicefs.format import Format
from pyjuicefs.meta import new_engine
from pyjuicefs.meta.base import Meta
from pyjuicefs.meta.base_common import Context
from pyjuicefs.object import create_storage
from pyjuicefs.object.base import ObjectStorage
from pyjuicefs.vfs import VFS

CTX = Context(uid=0, gid=0, pid=1)
ROOT = 1
KIB = 1 << 10
MIB = 1 << 20


@dataclass
class Volume:
    url: str
    fmt: Format

    def storage(self) -> ObjectStorage:
        """The volume's bucket, rooted at `<name>/` (to look at the objects)."""
        return create_storage(self.fmt, retries=0)

    def chunk_objects(self) -> list[str]:
        return [o.key for o in self.storage().list_all("chunks/")]


def format_volume(url: str, storage: str, bucket: str, block_kib: int = 64, trash_days: int = 0) -> Format:
    fmt = Format(Name="vfstest", UUID=str(uuid.uuid4()), Storage=storage, Bucket=bucket, BlockSize=block_kib,
                 TrashDays=trash_days)
    engine = new_engine(url)
    try:
        Meta(engine).init(fmt)
    finally:
        engine.close()
    return fmt


@contextmanager
def raises_errno(code: int):
    with pytest.raises(OSError) as ei:
        yield ei
    assert ei.value.errno == code, f"expected {errno.errorcode[code]}, got {ei.value!r}"


def create(v: VFS, name: bytes, flags: int = os.O_RDWR, parent: int = ROOT, mode: int = 0o644) -> tuple[int, int]:
    """(fh, inode) of a new file."""
    fh, entry = v.create(CTX, parent, name, mode, flags)
    return fh, entry.inode


def write_file(v: VFS, name: bytes, data: bytes, parent: int = ROOT) -> int:
    fh, ino = create(v, name, parent=parent)
    v.write(CTX, fh, 0, data)
    v.flush(CTX, fh, 0)
    v.release(CTX, fh)
    return ino


def read_file(v: VFS, ino: int, chunk: int = 1 << 20) -> bytes:
    fh, attr = v.open(CTX, ino, os.O_RDONLY)
    try:
        out = bytearray()
        while True:
            b = v.read(CTX, fh, len(out), chunk)
            if not b:
                break
            out += b
        assert len(out) == attr.length
        return bytes(out)
    finally:
        v.release(CTX, fh)
