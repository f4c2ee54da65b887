"""Every byte layout of JuiceFS metadata that another client reads.

Big-endian throughout (JuiceFS's utils.Buffer). Golden vectors captured from the reference
binary live in tests/compat/; docs/dev/compat.md lists each codec and its tests.
"""

from __future__ import annotations

import struct

from .types import Attr, Slice

# flags u8 | mode u16 (type<<12 | perm) | uid u32 | gid u32 | atime i64 | atimensec u32 |
# mtime i64 | mtimensec u32 | ctime i64 | ctimensec u32 | nlink u32 | length u64 | rdev u32 |
# parent u64 — 71 bytes; then access_acl u32 | default_acl u32 when either is set, then tier u8
# when set. JuiceFS sizes its buffer one byte larger than it writes (36+24+4+8 = 72 for 71 bytes)
# and stores the whole buffer, so every record ends with one zero byte: 72, 73, 80 or 81 bytes.
_ATTR = struct.Struct(">BHIIqIqIqIIQIQ")
_ACL = struct.Struct(">II")
ATTR_SIZE = _ATTR.size  # 71, without the trailing zero byte


def encode_attr(a: Attr) -> bytes:
    buf = _ATTR.pack(
        a.flags, ((a.typ & 0xF) << 12) | (a.mode & 0xFFF), a.uid, a.gid,
        a.atime, a.atimensec, a.mtime, a.mtimensec, a.ctime, a.ctimensec,
        a.nlink, a.length, a.rdev, a.parent,
    )
    if a.access_acl or a.default_acl:
        buf += _ACL.pack(a.access_acl, a.default_acl)
    if a.tier:
        buf += bytes([a.tier])
    return buf + b"\0"


def decode_attr(buf: bytes) -> Attr:
    """Read as JuiceFS does: each optional part is present when enough bytes are left."""
    if len(buf) < ATTR_SIZE - 8:
        raise ValueError(f"attribute record too short: {len(buf)} bytes")
    if len(buf) < ATTR_SIZE:  # very old records have no parent
        buf = bytes(buf) + b"\0" * (ATTR_SIZE - len(buf))
    (flags, mode, uid, gid, atime, atimensec, mtime, mtimensec, ctime, ctimensec,
     nlink, length, rdev, parent) = _ATTR.unpack_from(buf)
    a = Attr(typ=mode >> 12, mode=mode & 0xFFF, flags=flags, uid=uid, gid=gid, rdev=rdev,
             atime=atime, mtime=mtime, ctime=ctime, atimensec=atimensec, mtimensec=mtimensec,
             ctimensec=ctimensec, nlink=nlink, length=length, parent=parent)
    pos = ATTR_SIZE
    if len(buf) - pos >= 8:
        a.access_acl, a.default_acl = _ACL.unpack_from(buf, pos)
        pos += 8
    if len(buf) - pos >= 1:
        a.tier = buf[pos]
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
# type is Linux's F_RDLCK (0) / F_WRLCK (1); end is inclusive.
_PLOCK = struct.Struct(">IIQQ")
F_RDLCK, F_WRLCK, F_UNLCK = 0, 1, 2


def encode_plock_records(records: list[tuple[int, int, int, int]]) -> bytes:
    """records: (type, pid, start, end) with JuiceFS's F_RDLCK/F_WRLCK values."""
    return b"".join(_PLOCK.pack(*r) for r in records)


def decode_plock_records(buf: bytes) -> list[tuple[int, int, int, int]]:
    return [_PLOCK.unpack_from(buf, i) for i in range(0, len(buf) - len(buf) % _PLOCK.size, _PLOCK.size)]


# --- POSIX ACL rules (pkg/acl) -------------------------------------------------------------------
# A rule: owner u16 | group u16 | mask u16 | other u16 | n u32 | n × (uid u32, perm u16) |
#         m u32 | m × (gid u32, perm u16). Stored in Redis `acl` {id -> rule}, TKV R<id>.
# SQL jfs_acl keeps owner/group/mask/other as columns and the named entries as
# concatenated (id u32, perm u16) blobs without a count.
_ACL_HEAD = struct.Struct(">HHHH")
_ACL_ENTRY = struct.Struct(">IH")
ACL_NONE = 0xFFFF  # permission field of an absent entry (e.g. no mask)


def encode_acl_entries(entries: list[tuple[int, int]]) -> bytes:
    return b"".join(_ACL_ENTRY.pack(i, p) for i, p in entries)


def decode_acl_entries(buf: bytes) -> list[tuple[int, int]]:
    if len(buf) % _ACL_ENTRY.size:
        raise ValueError(f"ACL entries of {len(buf)} bytes")
    return [_ACL_ENTRY.unpack_from(buf, i) for i in range(0, len(buf), _ACL_ENTRY.size)]


def encode_acl_rule(owner: int, group: int, mask: int, other: int,
                    users: list[tuple[int, int]], groups: list[tuple[int, int]]) -> bytes:
    return (_ACL_HEAD.pack(owner, group, mask, other)
            + struct.pack(">I", len(users)) + encode_acl_entries(users)
            + struct.pack(">I", len(groups)) + encode_acl_entries(groups))


def decode_acl_rule(buf: bytes) -> tuple[int, int, int, int, list[tuple[int, int]], list[tuple[int, int]]]:
    """(owner, group, mask, other, named users, named groups) of an encoded rule."""
    owner, group, mask, other = _ACL_HEAD.unpack_from(buf)
    pos = _ACL_HEAD.size
    lists = []
    for _ in range(2):
        (n,) = struct.unpack_from(">I", buf, pos)
        pos += 4
        lists.append(decode_acl_entries(buf[pos:pos + n * _ACL_ENTRY.size]))
        pos += n * _ACL_ENTRY.size
    return owner, group, mask, other, lists[0], lists[1]
