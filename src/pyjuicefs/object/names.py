"""Object names of data blocks, exactly as JuiceFS 1.4 writes them (pkg/chunk/cached_store.go).

A slice of `length` bytes is cut into blocks of `block_size` bytes (the last one shorter); block
`indx` of slice `id` is stored under (relative to the volume prefix `<name>/`):

    chunks/<id // 1000 // 1000>/<id // 1000>/<id>_<indx>_<bsize>     default
    chunks/<%02X of id % 256>/<id // 1000 // 1000>/<id>_<indx>_<bsize>  with --hash-prefix

Numbers are plain decimal; the hash directory is two upper-case hex digits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CHUNKS_DIR = "chunks/"

_NAME = re.compile(r"^chunks/([0-9A-F]{2}|\d+)/(\d+)/(\d+)_(\d+)_(\d+)$")
_HEX2 = re.compile(r"^[0-9A-F]{2}$")


def block_key(slice_id: int, indx: int, bsize: int, hash_prefix: bool = False) -> str:
    """Name of block `indx` (of `bsize` bytes) of slice `slice_id`."""
    if hash_prefix:
        return f"chunks/{slice_id % 256:02X}/{slice_id // 1000 // 1000}/{slice_id}_{indx}_{bsize}"
    return f"chunks/{slice_id // 1000 // 1000}/{slice_id // 1000}/{slice_id}_{indx}_{bsize}"


def block_size_at(length: int, indx: int, block_size: int) -> int:
    """Size of block `indx` of a slice of `length` bytes."""
    return min(block_size, length - indx * block_size)


def slice_keys(slice_id: int, length: int, block_size: int, hash_prefix: bool = False) -> list[str]:
    """Names of every block of a slice of `length` bytes (none for an empty slice)."""
    if length <= 0:
        return []
    n = (length - 1) // block_size + 1
    return [block_key(slice_id, i, block_size_at(length, i, block_size), hash_prefix) for i in range(n)]


@dataclass(slots=True, frozen=True)
class BlockName:
    slice_id: int
    indx: int
    size: int
    hash_prefix: bool


def parse_block_key(key: str) -> BlockName | None:
    """The parts of a block name (relative to the volume prefix), or None if `key` is not one.

    Only names that block_key() would produce are accepted (directories must match the id), so
    gc/fsck never mistake a stray object for a block.
    """
    m = _NAME.match(key)
    if not m:
        return None
    slice_id, indx, size = int(m[3]), int(m[4]), int(m[5])
    # A two-digit directory is ambiguous ("12" is both decimal and hex): accept either form.
    for hp in (False, True):
        if hp and not _HEX2.match(m[1]):
            continue
        if block_key(slice_id, indx, size, hp) == key:
            return BlockName(slice_id, indx, size, hp)
    return None
