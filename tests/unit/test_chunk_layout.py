"""chunk.layout: newest-wins overlay of slice records, checked against a byte-array model."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pyjuicefs.layout import (
    CHUNK_SIZE,
    Segment,
    build_slices,
    chunk_length,
    chunk_ranges,
    clip,
    compact_chunk,
    hole,
    overlay,
    referenced,
    skip_some,
    visible,
)
from pyjuicefs.meta.types import Slice

SPAN = 160  # positions used by generated records (layout does not depend on the chunk size)


def content(sid: int, objoff: int) -> int:
    """Byte at offset objoff of slice object sid (never 0, so holes stand out)."""
    return (sid * 131 + objoff * 7) % 251 + 1


@st.composite
def records(draw: st.DrawFn) -> list[Slice]:
    out = []
    for i in range(draw(st.integers(0, 12))):
        pos = draw(st.integers(0, SPAN - 1))
        length = draw(st.integers(0, SPAN - pos))
        if draw(st.integers(0, 5)) == 0:
            out.append(Slice(pos, 0, 0, 0, length))  # a hole record (truncate/fallocate)
            continue
        off = draw(st.integers(0, 20))
        size = off + length + draw(st.integers(0, 20))
        out.append(Slice(pos, i + 1, size, off, length))
    return out


def model(recs: list[Slice]) -> tuple[bytearray, list[int]]:
    """Apply the records in order to a byte array; also track which slice owns each byte."""
    data, owner = bytearray(SPAN), [0] * SPAN
    for s in recs:
        for k in range(s.len):
            data[s.pos + k] = content(s.id, s.off + k) if s.id else 0
            owner[s.pos + k] = s.id
    return data, owner


def render(segs: list[Segment]) -> bytes:
    out = bytearray()
    for s in segs:
        assert s.len > 0
        assert s.id == 0 or 0 <= s.off and s.off + s.len <= s.size
        out += bytes(s.len) if s.id == 0 else bytes(content(s.id, s.off + k) for k in range(s.len))
    return bytes(out)


def contiguous(segs: list[Segment], start: int) -> None:
    pos = start
    for s in segs:
        assert s.pos == pos
        pos = s.end


@settings(max_examples=400, deadline=None)
@given(records())
def test_build_slices_matches_model(recs: list[Slice]) -> None:
    data, _ = model(recs)
    segs = build_slices(recs)
    contiguous(segs, 0)
    got = render(segs)
    # like JuiceFS, hole records are part of the tree: the result ends where the last record ends
    assert len(got) == chunk_length(recs)
    assert got == bytes(data[: len(got)])


@settings(max_examples=400, deadline=None)
@given(records(), st.integers(0, SPAN), st.integers(0, SPAN))
def test_visible_range_matches_model(recs: list[Slice], off: int, length: int) -> None:
    data, _ = model(recs)
    padded = bytes(data) + bytes(SPAN)
    segs = visible(recs, off, length)
    contiguous(segs, off)
    assert sum(s.len for s in segs) == length
    assert render(segs) == padded[off: off + length]


@settings(max_examples=300, deadline=None)
@given(records())
def test_overlay_is_sorted_disjoint_and_newest_wins(recs: list[Slice]) -> None:
    _, owner = model(recs)
    prev_end = 0
    for s in overlay(recs):
        assert s.pos >= prev_end and s.len > 0
        prev_end = s.end
        assert all(owner[p] == s.id for p in range(s.pos, s.end))
    # ids that own at least one byte are exactly the referenced ones
    assert referenced(recs) == {i for i in owner if i}


@settings(max_examples=300, deadline=None)
@given(records())
def test_compact_chunk_covers_all_data(recs: list[Slice]) -> None:
    data, _ = model(recs)
    pos, size, segs = compact_chunk(recs)
    if not recs or all(s.len == 0 for s in recs):
        assert (pos, size, segs) == (0, 0, [])
        return
    contiguous(segs, pos)
    assert sum(s.len for s in segs) == size
    if not any(data):
        assert len(segs) == 1 and segs[0].is_hole and size == 1
        return
    assert not segs[0].is_hole and not segs[-1].is_hole
    assert render(segs) == bytes(data[pos: pos + size])
    assert not any(data[:pos]) and not any(data[pos + size:])


def test_examples() -> None:
    recs = [Slice(0, 1, 100, 0, 100), Slice(10, 2, 20, 0, 20), Slice(50, 0, 0, 0, 10)]
    assert build_slices(recs) == [
        Segment(0, 1, 100, 0, 10),
        Segment(10, 2, 20, 0, 20),
        Segment(30, 1, 100, 30, 20),
        Segment(50, 0, 0, 0, 10),
        Segment(60, 1, 100, 60, 40),
    ]
    assert build_slices([Slice(5, 3, 10, 2, 4)]) == [hole(0, 5), Segment(5, 3, 10, 2, 4)]
    assert build_slices([]) == []
    assert visible([], 7, 3) == [hole(7, 3)]
    assert clip([Segment(0, 1, 10, 0, 10)], 4, 10) == [Segment(4, 1, 10, 4, 6), hole(10, 4)]


def test_many_records_are_cheap() -> None:
    # 5000 appends of 4 KiB plus overwrites: the overlay must not be quadratic in Python code
    recs = [Slice(i * 4096, i + 1, 4096, 0, 4096) for i in range(5000)]
    recs += [Slice(i * 8192 + 100, 10000 + i, 50, 0, 50) for i in range(2000)]
    segs = build_slices(recs)
    assert sum(s.len for s in segs) == 5000 * 4096


def test_skip_some() -> None:
    mib = 1 << 20
    big = Slice(0, 1, 4 * mib, 0, 4 * mib)
    small = [Slice(4 * mib + i * 4096, 10 + i, 4096, 0, 4096) for i in range(10)]
    assert skip_some([big, *small]) == 1
    assert skip_some(small) == 0  # too small
    assert skip_some([big, Slice(0, 2, 4096, 0, 4096), *small]) == 0  # first no longer visible first
    assert skip_some([big, Slice(8 * mib, 3, 20 * mib, 0, 20 * mib)]) == 0  # < 1/5 of the chunk
    later = [Slice(6 * mib + i * 4096, 10 + i, 4096, 0, 4096) for i in range(10)]
    assert skip_some([big, Slice(4 * mib, 2, 2 * mib, 0, 2 * mib), *later]) == 2
    assert skip_some([big, big]) == 0  # repeated later: compact it


def test_chunk_ranges() -> None:
    assert list(chunk_ranges(0, 10)) == [(0, 0, 10)]
    assert list(chunk_ranges(CHUNK_SIZE - 5, 10)) == [(0, CHUNK_SIZE - 5, 5), (1, 0, 5)]
    assert list(chunk_ranges(3 * CHUNK_SIZE, 2 * CHUNK_SIZE)) == [(3, 0, CHUNK_SIZE), (4, 0, CHUNK_SIZE)]
    assert list(chunk_ranges(5, 0)) == []
