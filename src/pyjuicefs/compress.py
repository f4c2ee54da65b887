"""Block compression with JuiceFS 1.4's framing (pkg/compress).

What a block object holds, for a block of N uncompressed bytes:
- "none": the N bytes as they are.
- "lz4": one raw LZ4 *block* (no frame header, no stored size). JuiceFS uses a Go port of
  LZ4_compress_default; python-lz4's default mode produces the same bytes except, on some
  compressible inputs, in the last few bytes (the Go port ends matching a little earlier). Both
  decode each other's output; see tests/unit/test_compress.py.
- "zstd": one standard zstd frame at level 1 with the content size in the header and no checksum
  (byte-identical to the reference client, checked against objects it wrote).

The uncompressed length of a block is always known from its object name (`<id>_<index>_<len>`),
so decompress() takes it and rejects any other length.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod

import lz4.block
import zstandard

from .errors import StorageError, UserError

ZSTD_LEVEL = 1  # JuiceFS: "fastest"


class Compressor(ABC):
    """Thread-safe: one instance serves every upload and download thread."""

    name: str = ""

    @abstractmethod
    def compress_bound(self, size: int) -> int:
        """Largest compressed size of `size` input bytes (== size: the output is the input)."""

    @abstractmethod
    def compress(self, data: bytes | bytearray | memoryview) -> bytes:
        """The object bytes for one block."""

    @abstractmethod
    def decompress(self, data: bytes, size: int) -> bytes:
        """The `size` bytes of a block from its object bytes; StorageError if corrupt or of another size."""

    @property
    def seekable(self) -> bool:
        """True when byte i of a block is byte i of its object, so a range GET reads part of a block."""
        return self.compress_bound(0) == 0


class NoCompressor(Compressor):
    name = "none"

    def compress_bound(self, size: int) -> int:
        return size

    def compress(self, data: bytes | bytearray | memoryview) -> bytes:
        return bytes(data)

    def decompress(self, data: bytes, size: int) -> bytes:
        if len(data) != size:
            raise StorageError(f"block of {len(data)} bytes, expected {size}")
        return data


class LZ4Compressor(Compressor):
    name = "lz4"

    def compress_bound(self, size: int) -> int:
        # LZ4_COMPRESSBOUND
        return size + size // 255 + 16

    def compress(self, data: bytes | bytearray | memoryview) -> bytes:
        return lz4.block.compress(data, mode="default", store_size=False)

    def decompress(self, data: bytes, size: int) -> bytes:
        if not data:
            raise StorageError("lz4: decompress an empty input")
        try:
            out = lz4.block.decompress(data, uncompressed_size=size)
        except lz4.block.LZ4BlockError as e:
            raise StorageError(f"lz4: corrupt block: {e}") from e
        if len(out) != size:
            raise StorageError(f"lz4: block decompressed to {len(out)} bytes, expected {size}")
        return out


class ZstdCompressor(Compressor):
    name = "zstd"

    def __init__(self, level: int = ZSTD_LEVEL) -> None:
        self.level = level
        # zstandard (de)compressor objects must not be shared between threads.
        self._local = threading.local()

    def compress_bound(self, size: int) -> int:
        # ZSTD_COMPRESSBOUND
        extra = ((128 << 10) - size) >> 11 if size < (128 << 10) else 0
        return size + (size >> 8) + extra

    def _pair(self) -> tuple[zstandard.ZstdCompressor, zstandard.ZstdDecompressor]:
        pair = getattr(self._local, "pair", None)
        if pair is None:
            pair = (zstandard.ZstdCompressor(level=self.level), zstandard.ZstdDecompressor())
            self._local.pair = pair
        return pair

    def compress(self, data: bytes | bytearray | memoryview) -> bytes:
        return self._pair()[0].compress(data)

    def decompress(self, data: bytes, size: int) -> bytes:
        try:
            out = self._pair()[1].decompress(data, max_output_size=size)
        except zstandard.ZstdError as e:
            raise StorageError(f"zstd: corrupt block: {e}") from e
        if len(out) != size:
            raise StorageError(f"zstd: block decompressed to {len(out)} bytes, expected {size}")
        return out


def new_compressor(name: str | None) -> Compressor:
    """The compressor of a volume's `Compression` setting ("none"/"", "lz4", "zstd"; any case)."""
    algo = (name or "").lower()
    if algo in ("", "none"):
        return NoCompressor()
    if algo == "lz4":
        return LZ4Compressor()
    if algo == "zstd":
        return ZstdCompressor()
    raise UserError(f"unknown compression algorithm {name!r}: use none, lz4 or zstd")
