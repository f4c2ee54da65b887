"""On-disk format of a cached or staged block, as JuiceFS 1.4 writes it (pkg/chunk/disk_cache.go):

    <block bytes> [<crc32c of each 32 KiB piece, 4 bytes big-endian each>]

The checksums are present unless the cache was written with `--verify-cache-checksum none`; a
reader tells by the file size (length = block length → none; + 4·⌈length/32 KiB⌉ → present;
anything else → invalid). Checked against files written by the 1.4.2 binary.

Verification levels on read (JuiceFS cacheFile.ReadAt):
  none    no check
  full    check only when the whole block is read
  shrink  check the 32 KiB pieces that lie entirely inside the range read
  extend  widen the read to 32 KiB boundaries and check every piece it touches (default)
"""

from __future__ import annotations

import os
import struct

try:
    from crc32c import crc32c as _crc32c
except ImportError:  # pragma: no cover - the C package is a dependency; this keeps reads correct
    _TABLE = []
    for _i in range(256):
        _c = _i
        for _ in range(8):
            _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
        _TABLE.append(_c)

    def _crc32c(data: bytes | memoryview) -> int:  # type: ignore[misc]
        crc = 0xFFFFFFFF
        for b in bytes(data):
            crc = _TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
        return crc ^ 0xFFFFFFFF

CS_BLOCK = 32 << 10


class CorruptBlock(Exception):
    """A cached block whose size or checksum is wrong: it must be dropped, never returned."""


def checksum(data: bytes | bytearray | memoryview) -> bytes:
    """The checksum trailer of a block."""
    mv = memoryview(data)
    return b"".join(struct.pack(">I", _crc32c(mv[i:i + CS_BLOCK])) for i in range(0, len(mv), CS_BLOCK))


def checksum_len(length: int) -> int:
    return ((length - 1) // CS_BLOCK + 1) * 4 if length > 0 else 0


def write_block_file(path: str, data: bytes | bytearray | memoryview, mode: int, with_checksum: bool) -> None:
    """Write `path` atomically (a .tmp file renamed into place), with the checksum trailer."""
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        try:
            _write_all(fd, data)
            if with_checksum:
                _write_all(fd, checksum(data))
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    mv = memoryview(data)
    while mv:
        n = os.write(fd, mv)
        mv = mv[n:]


def _pread_exact(fd: int, n: int, off: int) -> bytes:
    data = os.pread(fd, n, off)
    if len(data) != n:
        raise CorruptBlock(f"short read: {len(data)} < {n} bytes at {off}")
    return data


def read_block_file(path: str, length: int, level: str, off: int = 0, n: int = -1) -> bytes:
    """Bytes [off, off+n) (n < 0: to the end) of a block file holding `length` bytes, verified at
    `level`. Raises FileNotFoundError / OSError, or CorruptBlock for a bad size or checksum."""
    if n < 0:
        n = length - off
    if off < 0 or off + n > length:
        raise ValueError(f"read [{off}, {off + n}) outside a block of {length} bytes")
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        cslen = checksum_len(length)
        if size == length:
            level = "none"
        elif size != length + cslen:
            raise CorruptBlock(f"invalid file size {size} for a block of {length} bytes")
        if level == "none" or (level == "full" and (off != 0 or n != length)):
            return _pread_exact(fd, n, off)
        if level == "extend":
            roff = off // CS_BLOCK * CS_BLOCK
            rend = min(-(-(off + n) // CS_BLOCK) * CS_BLOCK, length)
            data = _pread_exact(fd, rend - roff, roff)
            _verify(fd, data, roff, length)
            return data[off - roff:off - roff + n]
        data = _pread_exact(fd, n, off)
        if level == "full":
            _verify(fd, data, 0, length)
            return data
        # shrink: only whole pieces inside the range
        start = -(-off // CS_BLOCK) * CS_BLOCK
        end = off + n if off + n == length else (off + n) // CS_BLOCK * CS_BLOCK
        if end > start:
            _verify(fd, memoryview(data)[start - off:end - off], start, length)
        return data
    finally:
        os.close(fd)


def _verify(fd: int, data: bytes | memoryview, start: int, length: int) -> None:
    """Check `data`, which starts at block offset `start` (a multiple of 32 KiB)."""
    first = start // CS_BLOCK
    count = (len(data) - 1) // CS_BLOCK + 1
    stored = _pread_exact(fd, count * 4, length + first * 4)
    got = checksum(data)
    if got != stored:
        for i in range(count):
            if got[i * 4:i * 4 + 4] != stored[i * 4:i * 4 + 4]:
                raise CorruptBlock(f"checksum mismatch in the 32 KiB piece {first + i}")
        raise CorruptBlock("checksum mismatch")
