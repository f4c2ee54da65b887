"""Records and small helpers shared by the parts of the Meta API (base*.py)."""

from __future__ import annotations

import errno
import time
from dataclasses import dataclass, field
from typing import NamedTuple

from ..errors import FsError
from .types import MAX_NAME, TRASH_INODE, Attr, Slice

MODE_MASK_R = 4
MODE_MASK_W = 2
MODE_MASK_X = 1

XATTR_CREATE = 1
XATTR_REPLACE = 2

# fallocate(2) modes
FALLOC_KEEP_SIZE = 0x01
FALLOC_PUNCH_HOLE = 0x02
FALLOC_COLLAPSE_RANGE = 0x08
FALLOC_ZERO_RANGE = 0x10
FALLOC_INSERT_RANGE = 0x20

FLAG_SKIP_TRASH = 1 << 4  # JuiceFS FlagSkipTrash (attr flag)


@dataclass
class MetaConfig:
    """Runtime options of one client (not persisted; the volume settings live in Format)."""

    retries: int = 10  # io-retries: re-runs of an operation after a transient engine error
    heartbeat: float = 12.0  # seconds; a session expires after 5 heartbeats without refresh
    read_only: bool = False
    subdir: str = ""
    atime_mode: str = "noatime"  # noatime | relatime | strictatime
    max_deletes: int = 10  # 0: never delete objects of freed slices (left for gc)
    mount_point: str = ""
    skip_dir_mtime: float = 0.1  # do not update a parent's mtime more often than this
    dir_stat_flush_period: float = 1.0  # seconds; 0 flushes directory statistics at once


@dataclass(frozen=True)
class Context:
    """Who asks: the caller's credentials as the kernel passed them."""

    uid: int = 0
    gid: int = 0
    gids: tuple[int, ...] = field(default=())
    pid: int = 0
    umask: int = 0
    check_permission: bool = True

    def __post_init__(self) -> None:
        if not self.gids:
            object.__setattr__(self, "gids", (self.gid,))


ROOT_CTX = Context()


class StatFS(NamedTuple):
    total: int  # bytes
    avail: int  # bytes
    iused: int
    iavail: int


def volume_statfs(capacity: int, inode_limit: int, used: int, inodes: int) -> StatFS:
    """Usage of the volume by JuiceFS's rules for the root: without a capacity the total is 1 PiB,
    doubled while usage exceeds 80%; without an inode limit 10Mi available inodes, doubled likewise."""
    used, inodes = max(used, 0), max(inodes, 0)
    if capacity > 0:
        total = max(capacity, used)
    else:
        total = 1 << 50
        while total * 8 < used * 10:
            total *= 2
    if inode_limit > 0:
        iavail = max(0, inode_limit - inodes)
    else:
        iavail = 10 << 20
        while inodes * 10 > (inodes + iavail) * 8:
            iavail *= 2
    return StatFS(total, total - used, inodes, iavail)


class Exists(FsError):
    """EEXIST that also tells what exists (Create without O_EXCL opens it)."""

    def __init__(self, ino: int = 0, attr: Attr | None = None) -> None:
        super().__init__(errno.EEXIST)
        self.ino = ino
        self.attr = attr


def err(code: int) -> FsError:
    return FsError(code)


def to_bytes(name: str | bytes) -> bytes:
    return name.encode("utf-8", "surrogateescape") if isinstance(name, str) else bytes(name)


def check_name(name: bytes) -> None:
    if not name or b"/" in name or b"\0" in name:
        raise err(errno.EINVAL)
    if len(name) > MAX_NAME:
        raise err(errno.ENAMETOOLONG)


def is_trash(ino: int) -> bool:
    return ino >= TRASH_INODE


def now_ts() -> tuple[int, int]:
    ns = time.time_ns()
    return ns // 1_000_000_000, ns % 1_000_000_000


def stamp(attr: Attr, now: tuple[int, int], *, atime: bool = False, mtime: bool = False, ctime: bool = False) -> None:
    if atime:
        attr.atime, attr.atimensec = now
    if mtime:
        attr.mtime, attr.mtimensec = now
    if ctime:
        attr.ctime, attr.ctimensec = now


def since(attr_sec: int, attr_nsec: int, now: tuple[int, int]) -> float:
    return (now[0] - attr_sec) + (now[1] - attr_nsec) / 1e9


def access_mode(attr: Attr, uid: int, gids: tuple[int, ...]) -> int:
    """The rwx bits (4/2/1) that `uid` with `gids` gets on a node."""
    if uid == 0:
        return 7
    if uid == attr.uid:
        return (attr.mode >> 6) & 7
    if attr.gid in gids:
        return (attr.mode >> 3) & 7
    return attr.mode & 7

