"""Block compression framing (pyjuicefs.compress) against objects the reference client wrote."""

from __future__ import annotations

import random

import lz4.block
import pytest
import zstandard

from pyjuicefs.compress import LZ4Compressor, NoCompressor, ZstdCompressor, new_compressor
from pyjuicefs.errors import StorageError, UserError

# Written by `juicefs` 1.4.2 (mount of a `--compress lz4` / `--compress zstd` volume), file content
# b"pyjuicefs golden block\n" * 300, objects chunks/0/4/4097_0_6900 and chunks/01/0/4097_0_6900.
GOLDEN_DATA = b"pyjuicefs golden block\n" * 300
GOLDEN_LZ4 = bytes.fromhex(
    "ff0870796a75696365667320676f6c64656e20626c6f636b0a1700ffffffffffffffffffffffffffffffffffffffff"
    "ffffffffffffdf506c6f636b0a"
)
GOLDEN_ZSTD = bytes.fromhex(
    "28b52ffd60f419fd0000b870796a75696365667320676f6c64656e20626c6f636b0a0100b555fbd904"
)


def _samples() -> list[bytes]:
    r = random.Random(7)
    return [
        b"",
        b"x",
        bytes(4 << 20),  # a whole block of zeros
        r.randbytes(1 << 20),  # incompressible
        b"".join(b"line %d\n" % i for i in range(50000)),
    ]


@pytest.mark.parametrize("name", ["none", "", "NONE", "lz4", "LZ4", "zstd", "Zstd"])
def test_new_compressor_names(name: str) -> None:
    c = new_compressor(name)
    assert c.name == (name.lower() or "none")


def test_unknown_compressor_is_a_user_error() -> None:
    with pytest.raises(UserError, match="unknown compression"):
        new_compressor("gzip")


@pytest.mark.parametrize("name", ["none", "lz4", "zstd"])
def test_round_trip_within_bound(name: str) -> None:
    c = new_compressor(name)
    for data in _samples():
        if not data and name == "lz4":
            continue  # JuiceFS never stores an empty block; lz4 refuses to decompress one
        out = c.compress(data)
        assert len(out) <= c.compress_bound(len(data))
        assert c.decompress(out, len(data)) == data


def test_seekable_only_without_compression() -> None:
    assert NoCompressor().seekable
    assert not LZ4Compressor().seekable
    assert not ZstdCompressor().seekable


def test_lz4_is_a_raw_block_without_stored_size() -> None:
    data = GOLDEN_DATA
    out = LZ4Compressor().compress(data)
    # no 4-byte size prefix: python-lz4 needs the size from outside, like JuiceFS
    assert lz4.block.decompress(out, uncompressed_size=len(data)) == data
    assert out == GOLDEN_LZ4


def test_zstd_is_a_level1_frame_with_content_size() -> None:
    out = ZstdCompressor().compress(GOLDEN_DATA)
    assert out[:4] == b"\x28\xb5\x2f\xfd"
    params = zstandard.get_frame_parameters(out)
    assert params.content_size == len(GOLDEN_DATA)
    assert not params.has_checksum
    assert out == GOLDEN_ZSTD


def test_decompress_reference_objects() -> None:
    assert new_compressor("lz4").decompress(GOLDEN_LZ4, 6900) == GOLDEN_DATA
    assert new_compressor("zstd").decompress(GOLDEN_ZSTD, 6900) == GOLDEN_DATA


@pytest.mark.parametrize("name,obj", [("lz4", GOLDEN_LZ4), ("zstd", GOLDEN_ZSTD), ("none", GOLDEN_DATA)])
def test_wrong_size_is_corruption(name: str, obj: bytes) -> None:
    c = new_compressor(name)
    with pytest.raises(StorageError):
        c.decompress(obj, 6899)
    with pytest.raises(StorageError):
        c.decompress(obj, 6901)


@pytest.mark.parametrize("name", ["lz4", "zstd"])
def test_garbage_is_corruption(name: str) -> None:
    c = new_compressor(name)
    with pytest.raises(StorageError):
        c.decompress(b"\x00\x01garbage" * 3, 100)
    with pytest.raises(StorageError):
        c.decompress(b"", 100)


def test_zstd_is_thread_safe() -> None:
    from concurrent.futures import ThreadPoolExecutor

    c = ZstdCompressor()
    blocks = [random.Random(i).randbytes(200_000) + bytes(100_000) for i in range(16)]
    with ThreadPoolExecutor(8) as ex:
        outs = list(ex.map(c.compress, blocks))
        back = list(ex.map(lambda o: c.decompress(o, 300_000), outs))
    assert back == blocks
