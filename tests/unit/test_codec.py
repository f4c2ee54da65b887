"""Round trips and edge cases of pyjuicefs.meta.codec (golden vectors: tests/compat/test_golden.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyjuicefs.meta import codec
from pyjuicefs.meta.types import Attr, Slice

u8, u16, u32, u64 = (st.integers(0, (1 << n) - 1) for n in (8, 16, 32, 64))
i64 = st.integers(-(1 << 63), (1 << 63) - 1)

attrs = st.builds(
    Attr, typ=st.integers(1, 7), mode=st.integers(0, 0o7777), flags=u8, uid=u32, gid=u32, rdev=u32,
    atime=i64, mtime=i64, ctime=i64, atimensec=u32, mtimensec=u32, ctimensec=u32, nlink=u32,
    length=u64, parent=u64, access_acl=u32, default_acl=u32, tier=u8,
)


@given(attrs)
def test_attr_round_trip(a: Attr) -> None:
    raw = codec.encode_attr(a)
    assert codec.decode_attr(raw) == a
    has_acl = bool(a.access_acl or a.default_acl)
    assert len(raw) == 72 + 8 * has_acl + bool(a.tier) and raw[-1] == 0


def test_attr_optional_parts_are_read_by_length() -> None:
    a = Attr(typ=1, mode=0o644, parent=5)
    assert len(codec.encode_attr(a)) == 72
    tier_only = codec.encode_attr(Attr(typ=1, tier=3))
    assert len(tier_only) == 73 and codec.decode_attr(tier_only).tier == 3
    both = codec.decode_attr(codec.encode_attr(Attr(typ=1, access_acl=2, tier=1)))
    assert (both.access_acl, both.default_acl, both.tier) == (2, 0, 1)
    # 71 bytes (no slack) and 63 bytes (no parent: very old clients) still decode
    assert codec.decode_attr(codec.encode_attr(a)[:71]).parent == 5
    assert codec.decode_attr(codec.encode_attr(a)[:63]).parent == 0
    with pytest.raises(ValueError):
        codec.decode_attr(b"\0" * 62)


@given(u8, u64)
def test_entry_round_trip(typ: int, ino: int) -> None:
    raw = codec.encode_entry(typ, ino)
    assert len(raw) == 9 and codec.decode_entry(raw) == (typ, ino)


def test_entry_rejects_wrong_size() -> None:
    with pytest.raises(ValueError):
        codec.decode_entry(b"\0" * 8)


@given(st.lists(st.builds(Slice, pos=u32, id=u64, size=u32, off=u32, len=u32), max_size=5))
def test_slices_round_trip(slices: list[Slice]) -> None:
    raw = b"".join(map(codec.encode_slice, slices))
    assert codec.decode_slices(raw) == slices


def test_slices_reject_partial_record() -> None:
    with pytest.raises(ValueError):
        codec.decode_slices(b"\0" * 25)


@given(st.lists(st.tuples(u64, u32), max_size=5))
def test_delayed_slices_round_trip(items: list[tuple[int, int]]) -> None:
    raw = b"".join(codec.encode_delayed_slice(i, s) for i, s in items)
    assert codec.decode_delayed_slices(raw) == items


def test_delayed_slices_ignore_corrupt_value() -> None:
    assert codec.decode_delayed_slices(b"\0" * 13) == []  # as JuiceFS: skipped, not an error


@given(st.lists(st.tuples(st.sampled_from([0, 1]), u32, u64, u64), max_size=4))
def test_plock_records_round_trip(recs: list[tuple[int, int, int, int]]) -> None:
    assert codec.decode_plock_records(codec.encode_plock_records(recs)) == recs


@given(u16, u16, u16, u16, st.lists(st.tuples(u32, u16), max_size=3), st.lists(st.tuples(u32, u16), max_size=3))
def test_acl_rule_round_trip(o: int, g: int, m: int, x: int, users: list, groups: list) -> None:
    raw = codec.encode_acl_rule(o, g, m, x, users, groups)
    assert len(raw) == 16 + 6 * (len(users) + len(groups))
    assert codec.decode_acl_rule(raw) == (o, g, m, x, users, groups)
    assert codec.decode_acl_entries(codec.encode_acl_entries(users)) == users


@given(i64, i64, i64)
def test_dir_stat_round_trip(length: int, space: int, inodes: int) -> None:
    assert codec.decode_dir_stat(codec.encode_dir_stat(length, space, inodes)) == (length, space, inodes)


def test_align4k() -> None:
    assert [codec.align4k(n) for n in (0, 1, 4096, 4097)] == [4096, 4096, 4096, 8192]
