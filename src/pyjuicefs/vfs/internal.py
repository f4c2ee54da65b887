"""The virtual files in the root of a mount, with JuiceFS's names and inode numbers
(pkg/vfs/internal.go): `.accesslog`, `.stats`, `.config`, and `.trash` (served by meta).

`.control` (JuiceFS's command channel for `juicefs info/rmr/warmup`) is reserved but not served:
lookups of it fail with ENOENT, so the reference CLI sees that this is not its own mount.
"""

from __future__ import annotations

import json
import os
import time

from ..meta.types import TRASH_INODE, TYPE_DIRECTORY, TYPE_FILE, Attr

MIN_INTERNAL_INODE = 0x7FFFFFFF00000000
LOG_INODE = MIN_INTERNAL_INODE + 1
CONTROL_INODE = MIN_INTERNAL_INODE + 2
STATS_INODE = MIN_INTERNAL_INODE + 3
CONFIG_INODE = MIN_INTERNAL_INODE + 4

# name -> (inode, permission bits), in JuiceFS's listing order (after .control, which is not listed)
NODES: dict[bytes, tuple[int, int]] = {
    b".accesslog": (LOG_INODE, 0o400),
    b".stats": (STATS_INODE, 0o444),
    b".config": (CONFIG_INODE, 0o400),
    b".trash": (TRASH_INODE, 0o555),
}
SERVED_FILES = {LOG_INODE, STATS_INODE, CONFIG_INODE}
RESERVED_NAMES = set(NODES) | {b".control"}


def is_special(ino: int) -> bool:
    """JuiceFS IsSpecialNode: internal files and the trash directories."""
    return ino >= MIN_INTERNAL_INODE


def is_internal(ino: int) -> bool:
    """An internal file served by the VFS itself (the FUSE adapter opens these with direct_io:
    their length attribute is 0 except for .config)."""
    return ino in SERVED_FILES


def is_reserved_name(parent: int, name: bytes) -> bool:
    return parent == 1 and name in RESERVED_NAMES


def node_attrs() -> dict[int, Attr]:
    """Attributes of the internal files, owned by this process's user, stamped now."""
    now = int(time.time())
    uid = os.getuid() if hasattr(os, "getuid") else 0
    gid = os.getgid() if hasattr(os, "getgid") else 0
    out: dict[int, Attr] = {}
    for ino, mode in NODES.values():
        if ino == TRASH_INODE:
            a = Attr(typ=TYPE_DIRECTORY, mode=mode, nlink=2, length=4 << 10, parent=1)
        else:
            a = Attr(typ=TYPE_FILE, mode=mode, nlink=1, uid=uid, gid=gid, parent=1)
        a.atime = a.mtime = a.ctime = now
        out[ino] = a
    return out


def config_json(conf: dict[str, object]) -> bytes:
    """`.config`: the running configuration, indented one space as JuiceFS's MarshalIndent(v, "", " ")."""
    return json.dumps(conf, indent=" ", default=str).encode()
