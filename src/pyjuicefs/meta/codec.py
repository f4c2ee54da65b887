"""Every byte layout of JuiceFS metadata that another client reads.

Big-endian throughout (JuiceFS's utils.Buffer). Golden vectors captured from the reference
binary live in tests/compat/; docs/dev/compat.md lists each codec and its tests.
"""

from __future__ import annotations

import struct

from .types import Attr, Slice

# flags u8 | mode u16 (type<<12 | perm) | uid u32 | gid u32 | atime i64 | atimensec u32 |
# mtime i64 | mtimensec u32 | ctime i64 | ctimensec u32 | nlink u32 | length u64 | rdev u32 |
# parent u64 — 71 bytes; then optionally access_acl u32 | default_acl u32, then tier u8.
_ATTR = struct.Struct(">BHIIqIqIqIIQIQ")
_ACL = struct.Struct(">II")
ATTR_SIZE = _ATTR.size  # 71


def encode_attr(a: Attr) -> bytes:
    buf = _ATTR.pack(
        a.flags, ((a.typ & 0xF) << 12) | (a.mode & 0xFFF), a.uid, a.gid,
        a.atime, a.atimensec, a.mtime, a.mtimensec, a.ctime, a.ctimensec,
        a.nlink, a.length, a.rdev, a.parent,
    )
    if a.access_acl or a.default_acl or a.tier:
        buf += _ACL.pack(a.access_acl, a.default_acl)
    if a.tier:
        buf += bytes([a.tier])
    return buf


def decode_attr(buf: bytes) -> Attr:
    if len(buf) < ATTR_SIZE - 8:
        raise ValueError(f"attribute record too short: {len(buf)} bytes")
    if len(buf) < ATTR_SIZE:  # very old records have no parent
        buf = bytes(buf) + b"\0" * (ATTR_SIZE - len(buf))
    (flags, mode, uid, gid, atime, atimensec, mtime, mtimensec, ctime, ctimensec,
     nlink, length, rdev, parent) = _ATTR.unpack_from(buf)
    a = Attr(typ=mode >> 12, mode=mode & 0xFFF, flags=flags, uid=uid, gid=gid, rdev=rdev,
             atime=atime, mtime=mtime, ctime=ctime, atimensec=atimensec, mtimensec=mtimensec,
             ctimensec=ctimensec, nlink=nlink, length=length, parent=parent)
    rest = len(buf) - ATTR_SIZE
    if rest >= 8:
        a.access_acl, a.default_acl = _ACL.unpack_from(buf, ATTR_SIZE)
    if rest >= 9:
        a.tier = buf[ATTR_SIZE + 8]
    return a


# A directory entry value: type u8 | inode u64.
_ENTRY = struct.Struct(">BQ")


def encode_entry(typ: int, inode: int) -> bytes:
    return _ENTRY.pack(typ, inode)


def decode_entry(buf: bytes) -> tuple[int, int]:
    """(type, inode) of an entry value."""
    if len(buf) != _ENTRY.size:
        raise ValueError(f"invalid entry value of {len(buf)} bytes")
    return _ENTRY.unpack(buf)


# A slice record in a chunk: pos u32 | id u64 | size u32 | off u32 | len u32 — 24 bytes.
_SLICE = struct.Struct(">IQIII")
SLICE_SIZE = _SLICE.size


def encode_slice(s: Slice) -> bytes:
    return _SLICE.pack(s.pos, s.id, s.size, s.off, s.len)


def decode_slices(buf: bytes) -> list[Slice]:
    """All slice records of a chunk value (SQL/TKV: concatenated; Redis: one per list item)."""
    if len(buf) % SLICE_SIZE:
        raise ValueError(f"chunk value of {len(buf)} bytes is not a multiple of {SLICE_SIZE}")
    return [Slice(*_SLICE.unpack_from(buf, i)) for i in range(0, len(buf), SLICE_SIZE)]


# A delayed slice (deleted but kept for trash): id u64 | size u32.
_DELAYED = struct.Struct(">QI")


def encode_delayed_slice(id_: int, size: int) -> bytes:
    return _DELAYED.pack(id_, size)


def decode_delayed_slices(buf: bytes) -> list[tuple[int, int]]:
    if len(buf) % _DELAYED.size:
        return []
    return [_DELAYED.unpack_from(buf, i) for i in range(0, len(buf), _DELAYED.size)]


# Directory statistics value (TKV): length i64 | space i64 | inodes i64.
_DIRSTAT = struct.Struct(">qqq")


def encode_dir_stat(length: int, space: int, inodes: int) -> bytes:
    return _DIRSTAT.pack(length, space, inodes)


def decode_dir_stat(buf: bytes) -> tuple[int, int, int]:
    return _DIRSTAT.unpack(buf)


def align4k(length: int) -> int:
    """Space a file of `length` bytes is charged for (JuiceFS rounds to 4 KiB; empty → 4 KiB)."""
    if length == 0:
        return 1 << 12
    return (((length - 1) >> 12) + 1) << 12


# A POSIX lock record: type u32 | pid u32 | start u64 | end u64 — 24 bytes, concatenated.
_PLOCK = struct.Struct(">IIQQ")


def encode_plock_records(records: list[tuple[int, int, int, int]]) -> bytes:
    """records: (type, pid, start, end) with JuiceFS's F_RDLCK/F_WRLCK values."""
    return b"".join(_PLOCK.pack(*r) for r in records)


def decode_plock_records(buf: bytes) -> list[tuple[int, int, int, int]]:
    return [_PLOCK.unpack_from(buf, i) for i in range(0, len(buf) - len(buf) % _PLOCK.size, _PLOCK.size)]
