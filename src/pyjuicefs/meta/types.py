"""Records and constants shared by every metadata engine (JuiceFS 1.4 values)."""

from __future__ import annotations

import dataclasses
import stat
from dataclasses import dataclass, field
from typing import NewType

Ino = NewType("Ino", int)

MAX_META_VERSION = 1
CHUNK_SIZE = 1 << 26  # 64 MiB
MAX_NAME = 255
MAX_SYMLINK = 4096

ROOT_INODE = Ino(1)
TRASH_INODE = Ino(0x7FFFFFFF10000000)
TRASH_NAME = ".trash"

TYPE_FILE = 1
TYPE_DIRECTORY = 2
TYPE_SYMLINK = 3
TYPE_FIFO = 4
TYPE_BLOCKDEV = 5
TYPE_CHARDEV = 6
TYPE_SOCKET = 7

RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
RENAME_WHITEOUT = 4
RENAME_RESTORE = 1 << 5  # internal

SET_ATTR_MODE = 1 << 0
SET_ATTR_UID = 1 << 1
SET_ATTR_GID = 1 << 2
SET_ATTR_SIZE = 1 << 3
SET_ATTR_ATIME = 1 << 4
SET_ATTR_MTIME = 1 << 5
SET_ATTR_CTIME = 1 << 6
SET_ATTR_ATIME_NOW = 1 << 7
SET_ATTR_MTIME_NOW = 1 << 8
SET_ATTR_FLAG = 1 << 15

FLAG_IMMUTABLE = 1
FLAG_APPEND = 2

_TYPE_TO_S = {
    TYPE_FILE: stat.S_IFREG,
    TYPE_DIRECTORY: stat.S_IFDIR,
    TYPE_SYMLINK: stat.S_IFLNK,
    TYPE_FIFO: stat.S_IFIFO,
    TYPE_BLOCKDEV: stat.S_IFBLK,
    TYPE_CHARDEV: stat.S_IFCHR,
    TYPE_SOCKET: stat.S_IFSOCK,
}
_S_TO_TYPE = {v: k for k, v in _TYPE_TO_S.items()}
TYPE_NAMES = {
    TYPE_FILE: "regular",
    TYPE_DIRECTORY: "directory",
    TYPE_SYMLINK: "symlink",
    TYPE_FIFO: "fifo",
    TYPE_BLOCKDEV: "blockdev",
    TYPE_CHARDEV: "chardev",
    TYPE_SOCKET: "socket",
}


def type_to_stat(typ: int) -> int:
    """The S_IF* bits of a JuiceFS node type."""
    return _TYPE_TO_S[typ & 0x7F]


def type_from_stat(mode: int) -> int:
    """The JuiceFS node type of a st_mode."""
    return _S_TO_TYPE[stat.S_IFMT(mode)]


@dataclass(slots=True)
class Attr:
    """Attributes of a node, as JuiceFS stores them (times in seconds + nanoseconds)."""

    typ: int = TYPE_FILE
    mode: int = 0
    flags: int = 0
    uid: int = 0
    gid: int = 0
    rdev: int = 0
    atime: int = 0
    mtime: int = 0
    ctime: int = 0
    atimensec: int = 0
    mtimensec: int = 0
    ctimensec: int = 0
    nlink: int = 1
    length: int = 0
    parent: int = 0  # 0: tracked by the parent records (hard links)
    access_acl: int = 0
    default_acl: int = 0
    tier: int = 0

    @property
    def smode(self) -> int:
        """st_mode: type bits | permission bits."""
        return type_to_stat(self.typ) | self.mode

    def copy(self) -> "Attr":
        return dataclasses.replace(self)


@dataclass(slots=True, frozen=True)
class Slice:
    """A slice of a chunk as a reader sees it: object `id` of `size` bytes, of which
    [off, off+len) is visible at chunk position `pos`."""

    pos: int
    id: int
    size: int
    off: int
    len: int


@dataclass(slots=True)
class Entry:
    """One entry of a directory."""

    name: bytes
    inode: int
    typ: int
    attr: Attr | None = None


@dataclass(slots=True)
class SessionInfo:
    """What a client tells about itself (JSON field names as JuiceFS)."""

    Version: str = ""
    HostName: str = ""
    IPAddrs: list[str] = field(default_factory=list)
    MountPoint: str = ""
    MountTime: str = ""
    ProcessID: int = 0
