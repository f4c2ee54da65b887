"""fallocate(2) and copy_file_range(2) through a real pyjuicefs mount, each compared with the same
calls on a local file (the local file system is the oracle for contents and size).

Needs the patched pyfuse3 (scripts/build-pyfuse3.sh): with a stock pyfuse3, fallocate fails with
EOPNOTSUPP and copy_file_range is done by the kernel with reads and writes.
"""

from __future__ import annotations

import ctypes
import errno
import os
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_COLLAPSE_RANGE = 0x08
FALLOC_FL_ZERO_RANGE = 0x10

_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]


def fallocate(fd: int, mode: int, off: int, length: int) -> None:
    """fallocate(2) itself (os.posix_fallocate falls back to writing zeros, and has no mode)."""
    if _libc.fallocate(fd, mode, off, length) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def pattern(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


@pytest.fixture
def mount(volume, pyjuicefs_mount) -> Iterator[Path]:
    """A pyjuicefs mount of a fresh SQLite volume over a local bucket."""
    m = pyjuicefs_mount(volume("sqlite3"))
    yield Path(m.path)
    m.umount()


@pytest.fixture
def pair(mount: Path, tmp_path: Path, request) -> Callable[[bytes], tuple[Path, Path]]:
    """pair(initial) -> (file on the mount, local reference file), both holding `initial`."""
    n = 0

    def make(initial: bytes) -> tuple[Path, Path]:
        nonlocal n
        n += 1
        name = f"{request.node.name}-{n}".replace("[", "_").replace("]", "")
        remote, local = mount / name, tmp_path / name
        remote.write_bytes(initial)
        local.write_bytes(initial)
        return remote, local

    return make


def assert_same(remote: Path, local: Path) -> None:
    """Same size and bytes, read back through a fresh open (close-to-open)."""
    r, l = remote.read_bytes(), local.read_bytes()
    assert len(r) == len(l) == os.stat(remote).st_size == os.stat(local).st_size
    assert r == l, f"first difference at {next(i for i in range(len(r)) if r[i] != l[i])}"


def on_both(remote: Path, local: Path, fn: Callable[[int], None]) -> None:
    for p in (remote, local):
        fd = os.open(p, os.O_RDWR)
        try:
            fn(fd)
        finally:
            os.close(fd)


SIZE = (1 << 20) + 12345  # not block-aligned; 4 MiB blocks, so several cases cross block edges


# --- fallocate ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("off,length", [(SIZE - 100, 5 << 20), (0, 10), (SIZE + 4096, 1000)])
def test_posix_fallocate_extends(pair, off, length):
    remote, local = pair(pattern(SIZE, 1))
    on_both(remote, local, lambda fd: os.posix_fallocate(fd, off, length))
    assert_same(remote, local)
    assert os.stat(remote).st_size == max(SIZE, off + length)


@pytest.mark.parametrize("case", [
    ("default-extend", 0, SIZE - 10, 3 << 20),
    ("default-inside", 0, 100, 1000),
    ("keep-size-beyond", FALLOC_FL_KEEP_SIZE, SIZE - 10, 3 << 20),
    ("punch-middle", FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 1000, 300000),
    ("punch-across-eof", FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, SIZE - 500, 1 << 20),
    ("punch-block-edge", FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (1 << 20) - 7, 14),
    ("zero-middle", FALLOC_FL_ZERO_RANGE, 4096, 65536),
    ("zero-extend", FALLOC_FL_ZERO_RANGE, SIZE - 1000, 200000),
    ("zero-keep-size", FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, SIZE - 1000, 200000),
], ids=lambda c: c[0])
def test_fallocate_modes(pair, case):
    _, mode, off, length = case
    remote, local = pair(pattern(SIZE, 2))
    on_both(remote, local, lambda fd: fallocate(fd, mode, off, length))
    assert_same(remote, local)


def test_fallocate_after_unflushed_writes(pair):
    """Data written (not yet flushed) through the same descriptor is under the punched hole."""
    remote, local = pair(pattern(SIZE, 3))

    def work(fd: int) -> None:
        os.pwrite(fd, b"\xab" * 50000, 20000)
        fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 30000, 10000)
        os.pwrite(fd, b"\xcd" * 100, 35000)
        fallocate(fd, FALLOC_FL_ZERO_RANGE, SIZE + 100, 100)

    on_both(remote, local, work)
    assert_same(remote, local)


def test_fallocate_errors(mount):
    p = mount / "fallocate-errors"
    p.write_bytes(b"x" * 1000)
    fd = os.open(p, os.O_RDWR)
    try:
        with pytest.raises(OSError) as e:
            fallocate(fd, FALLOC_FL_PUNCH_HOLE, 0, 10)  # PUNCH_HOLE needs KEEP_SIZE
        assert e.value.errno in (errno.EINVAL, errno.EOPNOTSUPP)
        with pytest.raises(OSError) as e:
            fallocate(fd, 0, 0, 0)
        assert e.value.errno == errno.EINVAL
        with pytest.raises(OSError) as e:
            fallocate(fd, FALLOC_FL_COLLAPSE_RANGE, 0, 4096)
        assert e.value.errno in (errno.EINVAL, errno.EOPNOTSUPP)
    finally:
        os.close(fd)
    fd = os.open(p, os.O_RDONLY)
    try:
        with pytest.raises(OSError) as e:
            fallocate(fd, 0, 0, 10)
        assert e.value.errno == errno.EBADF
    finally:
        os.close(fd)
    assert p.read_bytes() == b"x" * 1000


# --- copy_file_range ---------------------------------------------------------------------------------

def copy_all(src_fd: int, dst_fd: int, count: int, off_src: int, off_dst: int) -> int:
    """os.copy_file_range until `count` bytes are copied or the source ends."""
    done = 0
    while done < count:
        n = os.copy_file_range(src_fd, dst_fd, count - done, off_src + done, off_dst + done)
        if n == 0:
            break
        done += n
    return done


@pytest.mark.parametrize("case", [
    ("whole-file", 0, 0, None),
    ("into-middle", 1000, 5000, 300000),
    ("beyond-eof-makes-hole", 0, SIZE + 70000, 100000),
    ("past-source-eof", SIZE - 100, 0, 5000),
], ids=lambda c: c[0])
def test_copy_file_range_between_files(pair, case):
    _, off_src, off_dst, count = case
    src_r, src_l = pair(pattern(SIZE, 4))
    dst_r, dst_l = pair(pattern(SIZE // 2, 5))
    count = SIZE if count is None else count
    copied = []
    for src, dst in ((src_r, dst_r), (src_l, dst_l)):
        sfd, dfd = os.open(src, os.O_RDONLY), os.open(dst, os.O_RDWR)
        try:
            copied.append(copy_all(sfd, dfd, count, off_src, off_dst))
        finally:
            os.close(sfd)
            os.close(dfd)
    assert copied[0] == copied[1]
    assert_same(dst_r, dst_l)
    assert_same(src_r, src_l)


def test_copy_file_range_within_one_file(pair):
    remote, local = pair(pattern(SIZE, 6))

    def work(fd: int) -> None:
        assert copy_all(fd, fd, 200000, 0, 500000) == 200000  # non-overlapping ranges of one file
        assert copy_all(fd, fd, 1000, 10, SIZE + 10) == 1000  # extends the file

    on_both(remote, local, work)
    assert_same(remote, local)


def test_copy_file_range_of_unflushed_data(pair):
    """Source data still in the writer's buffers is copied too (the VFS flushes it first)."""
    src_r, src_l = pair(b"")
    dst_r, dst_l = pair(b"")
    data = pattern(3 << 20, 7)
    for src, dst in ((src_r, dst_r), (src_l, dst_l)):
        sfd, dfd = os.open(src, os.O_RDWR), os.open(dst, os.O_RDWR)
        try:
            os.write(sfd, data)
            assert copy_all(sfd, dfd, len(data), 0, 0) == len(data)
        finally:
            os.close(sfd)
            os.close(dfd)
    assert_same(dst_r, dst_l)
    assert dst_r.read_bytes() == data


def test_copy_file_range_shares_data(mount, tmp_path):
    """The copy is made in the metadata engine (the new file refers to the source's slices): no
    object is uploaded, unlike the kernel's read/write fallback."""
    buckets = list(tmp_path.glob("bucket-sqlite3-*"))
    assert len(buckets) == 1, buckets

    def objects() -> int:
        return sum(len(files) for _root, _dirs, files in os.walk(buckets[0]))

    data = pattern(3 << 20, 8)
    (mount / "cfr-src").write_bytes(data)
    before = objects()
    sfd = os.open(mount / "cfr-src", os.O_RDONLY)
    dfd = os.open(mount / "cfr-dst", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        assert copy_all(sfd, dfd, len(data), 0, 0) == len(data)
    finally:
        os.close(sfd)
        os.close(dfd)
    assert (mount / "cfr-dst").read_bytes() == data
    assert objects() == before
