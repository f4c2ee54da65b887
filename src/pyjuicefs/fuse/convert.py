"""Conversions between pyfuse3's records and the VFS's: attributes, setattr fields, statfs, callers.

Pure functions (plus one small cache), so they are testable without a kernel.
"""

from __future__ import annotations

import stat
import threading
import time
from typing import Any

import pyfuse3

from ..meta.base_common import Context, StatFS
from ..meta.types import (SET_ATTR_ATIME, SET_ATTR_CTIME, SET_ATTR_GID, SET_ATTR_MODE, SET_ATTR_MTIME, SET_ATTR_SIZE,
                          SET_ATTR_UID, TYPE_BLOCKDEV, TYPE_CHARDEV, TYPE_DIRECTORY, TYPE_FILE, TYPE_SYMLINK, Attr)

BLKSIZE = 0x10000  # st_blksize JuiceFS reports (one 64 KiB unit; `cp`/`dd` pick buffer sizes from it)
SPECIAL_TIMEOUT = 3600.0  # JuiceFS lets the kernel cache internal nodes (.stats, .config…) for an hour
_NS = 1_000_000_000
_SIZED = (TYPE_FILE, TYPE_DIRECTORY, TYPE_SYMLINK)
_DEVICES = (TYPE_BLOCKDEV, TYPE_CHARDEV)


def entry_attributes(ino: int, attr: Attr, *, attr_timeout: float, entry_timeout: float) -> pyfuse3.EntryAttributes:
    """EntryAttributes as JuiceFS's attrToStat fills them: sizes only for files, dirs and symlinks,
    rdev only for devices, 512-byte blocks, 64 KiB blksize, generation 1."""
    e = pyfuse3.EntryAttributes()
    e.st_ino = ino
    e.generation = 1
    e.attr_timeout = attr_timeout
    e.entry_timeout = entry_timeout
    e.st_mode = attr.smode
    e.st_nlink = attr.nlink
    e.st_uid = attr.uid
    e.st_gid = attr.gid
    typ = attr.typ & 0x7F
    e.st_rdev = attr.rdev if typ in _DEVICES else 0
    size = attr.length if typ in _SIZED else 0
    e.st_size = size
    e.st_blocks = (size + 511) // 512
    e.st_blksize = BLKSIZE
    e.st_atime_ns = attr.atime * _NS + attr.atimensec
    e.st_mtime_ns = attr.mtime * _NS + attr.mtimensec
    e.st_ctime_ns = attr.ctime * _NS + attr.ctimensec
    return e


def bare_entry(ino: int, typ: int = TYPE_DIRECTORY) -> pyfuse3.EntryAttributes:
    """Attributes for a readdir entry the VFS gave no attributes for ('.', '..'): the kernel only
    uses the inode and the type of those, and caches nothing (timeouts 0)."""
    a = Attr(typ=typ)
    return entry_attributes(ino, a, attr_timeout=0, entry_timeout=0)


def setattr_request(fuse_attr: pyfuse3.EntryAttributes, fields: pyfuse3.SetattrFields) -> tuple[int, Attr]:
    """(SET_ATTR_* mask, Attr carrying the new values) of a FUSE setattr. pyfuse3 has already turned
    ATIME_NOW/MTIME_NOW into explicit times, so they arrive as SET_ATTR_ATIME/MTIME."""
    mask = 0
    a = Attr()
    if fields.update_mode:
        mask |= SET_ATTR_MODE
        a.mode = stat.S_IMODE(fuse_attr.st_mode)
    if fields.update_uid:
        mask |= SET_ATTR_UID
        a.uid = fuse_attr.st_uid
    if fields.update_gid:
        mask |= SET_ATTR_GID
        a.gid = fuse_attr.st_gid
    if fields.update_size:
        mask |= SET_ATTR_SIZE
        a.length = fuse_attr.st_size
    if fields.update_atime:
        mask |= SET_ATTR_ATIME
        a.atime, a.atimensec = divmod(fuse_attr.st_atime_ns, _NS)
    if fields.update_mtime:
        mask |= SET_ATTR_MTIME
        a.mtime, a.mtimensec = divmod(fuse_attr.st_mtime_ns, _NS)
    if fields.update_ctime:
        mask |= SET_ATTR_CTIME
        a.ctime, a.ctimensec = divmod(fuse_attr.st_ctime_ns, _NS)
    return mask, a


def statvfs(st: StatFS) -> pyfuse3.StatvfsData:
    """statfs as JuiceFS answers it: 4 KiB blocks (at least one), free == available, names up to 255."""
    out = pyfuse3.StatvfsData()
    bsize = 4096
    out.f_bsize = bsize
    out.f_frsize = bsize
    out.f_blocks = max(st.total // bsize, 1)
    out.f_bavail = out.f_bfree = st.avail // bsize
    out.f_files = st.iused + st.iavail
    out.f_ffree = out.f_favail = st.iavail
    out.f_namemax = 255
    return out


class GroupCache:
    """Supplementary groups of calling processes, read from /proc/<pid>/status ("Groups:") as
    JuiceFS does on Linux, cached per pid for `ttl` seconds. Thread-safe: one lock around the dict
    (held only for dict operations, never while reading /proc)."""

    def __init__(self, ttl: float = 5.0, max_entries: int = 4096) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._items: dict[int, tuple[float, int, tuple[int, ...]]] = {}  # pid -> (expires, gid, gids)

    def get(self, pid: int, gid: int) -> tuple[int, ...]:
        if pid <= 0 or self.ttl <= 0:
            return (gid,)
        now = time.monotonic()
        with self._lock:
            hit = self._items.get(pid)
        if hit is not None and hit[0] > now and hit[1] == gid:
            return hit[2]
        gids = read_groups(pid, gid)
        with self._lock:
            if len(self._items) >= self.max_entries:
                self._items = {p: v for p, v in self._items.items() if v[0] > now}
                if len(self._items) >= self.max_entries:
                    self._items.clear()
            self._items[pid] = (now + self.ttl, gid, gids)
        return gids


def read_groups(pid: int, gid: int) -> tuple[int, ...]:
    """(gid, *supplementary groups other than gid) of a process; (gid,) if it is gone."""
    try:
        with open(f"/proc/{int(pid)}/status", "rb") as f:
            data = f.read()
    except OSError:
        return (gid,)
    p = data.find(b"\nGroups:")
    if p < 0:
        return (gid,)
    line = data[p + 8:].split(b"\n", 1)[0]
    out = [gid]
    for part in line.split():
        try:
            g = int(part)
        except ValueError:
            continue
        if g != gid and g not in out:
            out.append(g)
    return tuple(out)


def make_context(uid: int, gid: int, pid: int, umask: int, groups: GroupCache) -> Context:
    """The VFS Context of a request. The kernel checks permissions (default_permissions is always
    on), so, like JuiceFS, the meta layer does not check them again."""
    return Context(uid=uid, gid=gid, gids=groups.get(pid, gid), pid=pid, umask=umask, check_permission=False)


def request_ids(ctx: Any) -> tuple[int, int, int, int]:
    """(uid, gid, pid, umask) of a pyfuse3 RequestContext (read on the trio thread: plain ints
    are what crosses to the worker)."""
    return ctx.uid, ctx.gid, ctx.pid, ctx.umask
