"""Which bytes of which slice a reader sees: pure functions over a chunk's slice records.

A chunk (64 MiB of a file) is a list of slice records in write order; a later record hides what
earlier ones put at the same positions (newest wins). These functions take any records with the
attributes pos, id, size, off, len (pyjuicefs.meta.types.Slice fits) and return `Segment`s.
Shared by meta (read, copy_file_range) and the data path; it imports neither. Facts from JuiceFS pkg/meta/slice.go (buildSlice, compactChunk, skipSome).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

CHUNK_SIZE = 1 << 26  # 64 MiB, JuiceFS meta.ChunkSize


class SliceLike(Protocol):
    pos: int
    id: int
    size: int
    off: int
    len: int


@dataclass(slots=True, frozen=True)
class Segment:
    """Bytes [off, off+len) of slice `id` (an object of `size` bytes) seen at chunk position `pos`.
    id 0 is a hole (reads as zeros; size 0, off 0) — the record JuiceFS stores for a hole."""

    pos: int
    id: int
    size: int
    off: int
    len: int

    @property
    def end(self) -> int:
        return self.pos + self.len

    @property
    def is_hole(self) -> bool:
        return self.id == 0

    def cut(self, start: int, end: int) -> "Segment":
        """The part of this segment at chunk positions [start, end) (which must lie inside it)."""
        return Segment(start, self.id, self.size, self.off + (start - self.pos), end - start)


def hole(pos: int, length: int) -> Segment:
    """A hole record: zeros at [pos, pos+length)."""
    return Segment(pos, 0, 0, 0, length)


def _seg(s: SliceLike) -> Segment:
    return s if isinstance(s, Segment) else Segment(s.pos, s.id, s.size, s.off, s.len)


def overlay(slices: Iterable[SliceLike]) -> list[Segment]:
    """The visible data segments, sorted by pos, not overlapping, holes left out.

    Each record cuts what it overlaps out of the segments placed before it. O(n log n) searches
    plus list splices done in C, so a chunk of thousands of records stays cheap.
    """
    segs: list[Segment] = []
    starts: list[int] = []
    for s in slices:
        if s.len <= 0:
            continue
        new = _seg(s)
        a, b = new.pos, new.end
        i = bisect_right(starts, a) - 1
        if i < 0 or segs[i].end <= a:
            i += 1  # segs[i-1] (if any) ends before a
        j = bisect_left(starts, b)  # segs[j:] start at or after b
        repl: list[Segment] = []
        if i < j:
            first, last = segs[i], segs[j - 1]
            if first.pos < a:
                repl.append(first.cut(first.pos, a))
            repl.append(new)
            if last.end > b:
                repl.append(last.cut(b, last.end))
        else:
            repl.append(new)
        segs[i:j] = repl
        starts[i:j] = [x.pos for x in repl]
    return segs


def build_slices(slices: Iterable[SliceLike]) -> list[Segment]:
    """JuiceFS buildSlice: the visible segments from position 0 to the end of the last visible
    byte, contiguous, with holes (id 0) filling the gaps."""
    out: list[Segment] = []
    pos = 0
    for s in overlay(slices):
        if s.pos > pos:
            out.append(hole(pos, s.pos - pos))
        out.append(s)
        pos = s.end
    return out


def visible(slices: Iterable[SliceLike], off: int, length: int) -> list[Segment]:
    """Segments covering exactly chunk positions [off, off+length): newest data wins, holes and
    anything past the last written byte are id 0."""
    return clip(build_slices(slices), off, length)


def clip(segments: Sequence[Segment], off: int, length: int) -> list[Segment]:
    """Cut contiguous segments (build_slices output) to [off, off+length), padding with a hole."""
    if length <= 0:
        return []
    end = off + length
    out: list[Segment] = []
    pos = off
    for s in segments:
        if s.end <= off or s.len <= 0:
            continue
        if s.pos >= end:
            break
        a, b = max(s.pos, off), min(s.end, end)
        if a > pos:
            out.append(hole(pos, a - pos))
        out.append(s.cut(a, b) if not s.is_hole else hole(a, b - a))
        pos = b
    if pos < end:
        out.append(hole(pos, end - pos))
    return out


def chunk_length(slices: Iterable[SliceLike]) -> int:
    """Chunk position just after the last byte any record covers (holes included)."""
    return max((s.pos + s.len for s in slices if s.len > 0), default=0)


def referenced(slices: Iterable[SliceLike]) -> set[int]:
    """Ids of the slices still visible somewhere: the others' objects can be deleted after a
    compaction replaced the records."""
    return {s.id for s in overlay(slices) if s.id}


def compact_chunk(slices: Iterable[SliceLike]) -> tuple[int, int, list[Segment]]:
    """JuiceFS compactChunk: (pos, size, segments) of the region to rewrite as one slice — the
    visible segments without leading and trailing holes. A chunk of nothing but holes keeps one
    hole of length 1 (as JuiceFS does), so the result is never empty unless there is no record."""
    chunk = build_slices(slices)
    pos = 0
    while len(chunk) > 1 and chunk[0].is_hole:
        pos += chunk[0].len
        chunk = chunk[1:]
    while len(chunk) > 1 and chunk[-1].is_hole:
        chunk = chunk[:-1]
    if len(chunk) == 1 and chunk[0].is_hole:
        chunk = [hole(chunk[0].pos, 1)]
    return pos, sum(s.len for s in chunk), chunk


def skip_some(slices: Sequence[SliceLike]) -> int:
    """JuiceFS skipSome: how many leading records a compaction may leave alone — each one big
    (>= 1 MiB and >= 1/5 of the rest), still fully visible first, and not repeated later."""
    recs = [_seg(s) for s in slices]
    skipped = 0
    while skipped < len(recs):
        rest = recs[skipped:]
        pos, size, c = compact_chunk(rest)
        first = rest[0]
        if first.len < (1 << 20) or first.len * 5 < size or size == 0:
            break
        c0 = c[0]
        if not (pos == first.pos and c0.id == first.id and c0.off == first.off and c0.len == first.len):
            break
        if any(s == first for s in rest[1:]):
            break
        skipped += 1
    return skipped


def chunk_ranges(off: int, length: int, chunk_size: int = CHUNK_SIZE) -> Iterator[tuple[int, int, int]]:
    """Split file range [off, off+length) by chunk: (chunk index, offset in chunk, length)."""
    end = off + length
    while off < end:
        indx, coff = divmod(off, chunk_size)
        n = min(end - off, chunk_size - coff)
        yield indx, coff, n
        off += n
