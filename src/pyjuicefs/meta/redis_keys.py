"""Redis key names of a JuiceFS 1.4 volume (pkg/meta/redis.go).

A normal db URL uses no prefix; JuiceFS prefixes every key with "{db}" only in cluster mode,
which pyjuicefs does not support yet. Field names inside hashes never carry the prefix.
"""

from __future__ import annotations

# Counters whose Redis key is the lowercase name; Redis stores the last id handed out for
# nextinode/nextchunk, one less than SQL/TKV store (JuiceFS's dump adds 1, load subtracts 1).
_LOWER_COUNTERS = {"nextInode", "nextChunk", "nextSession"}
OFF_BY_ONE_COUNTERS = {"nextInode", "nextChunk"}


class Keys:
    """Key builders for one volume (prefix '' for a plain Redis db)."""

    def __init__(self, prefix: str = "") -> None:
        p = self.prefix = prefix
        self.setting = p + "setting"
        self.delfiles = p + "delfiles"  # zset "<ino>:<length>" -> unix seconds
        self.all_sessions = p + "allSessions"  # zset sid -> expire
        self.session_infos = p + "sessionInfos"  # hash sid -> SessionInfo JSON
        self.slice_refs = p + "sliceRef"  # hash k<id>_<size> -> refs beyond the first
        self.dir_data_length = p + "dirDataLength"
        self.dir_used_space = p + "dirUsedSpace"
        self.dir_used_inodes = p + "dirUsedInodes"

    def counter(self, name: str) -> str:
        if name in _LOWER_COUNTERS:
            name = name.lower()
        return self.prefix + name

    def inode(self, ino: int) -> str:
        return f"{self.prefix}i{ino}"

    def entry(self, parent: int) -> str:
        return f"{self.prefix}d{parent}"

    def parent(self, ino: int) -> str:
        return f"{self.prefix}p{ino}"

    def chunk(self, ino: int, indx: int) -> str:
        return f"{self.prefix}c{ino}_{indx}"

    def chunk_pattern(self, ino: int) -> str:
        return f"{self.prefix}c{ino}_*"

    def symlink(self, ino: int) -> str:
        return f"{self.prefix}s{ino}"

    def xattr(self, ino: int) -> str:
        return f"{self.prefix}x{ino}"

    def flock(self, ino: int) -> str:
        return f"{self.prefix}lockf{ino}"

    def plock(self, ino: int) -> str:
        return f"{self.prefix}lockp{ino}"

    def sustained(self, sid: int) -> str:
        # JuiceFS calls the set of a session's open-but-unlinked inodes "session<sid>"
        return f"{self.prefix}session{sid}"

    def locked(self, sid: int) -> str:
        # set of lock keys (lockf<ino> / lockp<ino>, with prefix) a session holds locks in
        return f"{self.prefix}locked{sid}"

    def lock_inode(self, lock_key: str) -> tuple[bool, int] | None:
        """(is_flock, inode) of a member of locked<sid>, or None if it is not a lock key."""
        body = lock_key[len(self.prefix):]
        if body.startswith("lockf") or body.startswith("lockp"):
            try:
                return body.startswith("lockf"), int(body[5:])
            except ValueError:
                return None
        return None


def slice_field(id_: int, size: int) -> str:
    """Field of a slice in the sliceRef hash."""
    return f"k{id_}_{size}"


def owner_field(sid: int, owner: int) -> str:
    """Field of a lock holder in lockf/lockp hashes: sid, '_', owner as 16 uppercase hex digits."""
    return f"{sid}_{owner:016X}"


def parse_owner_field(field: bytes | str) -> tuple[int, int] | None:
    s = field.decode() if isinstance(field, bytes) else field
    sid, sep, owner = s.partition("_")
    if not sep:
        return None
    try:
        return int(sid), int(owner, 16)
    except ValueError:
        return None


def delfile_member(ino: int, length: int) -> str:
    return f"{ino}:{length}"


def parse_delfile_member(member: bytes | str) -> tuple[int, int] | None:
    s = member.decode() if isinstance(member, bytes) else member
    parts = s.split(":")
    if len(parts) != 2:  # legacy records; JuiceFS cleans them up separately
        return None
    try:
        return int(parts[0]), int(parts[1])
    except ValueError:
        return None
