"""Attributes in the Meta API: setattr (chmod, chown, utimens, flags) and extended attributes."""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from .base_common import MODE_MASK_W, XATTR_CREATE, XATTR_REPLACE, Context, err, now_ts, stamp, to_bytes
from .engine import Txn
from .types import (
    SET_ATTR_ATIME,
    SET_ATTR_ATIME_NOW,
    SET_ATTR_FLAG,
    SET_ATTR_GID,
    SET_ATTR_MODE,
    SET_ATTR_MTIME,
    SET_ATTR_MTIME_NOW,
    SET_ATTR_SIZE,
    SET_ATTR_UID,
    TRASH_INODE,
    TYPE_DIRECTORY,
    Attr,
)

if TYPE_CHECKING:
    from .base import Meta


class AttrOps:
    def setattr(self: Meta, ctx: Context, ino: int, set_mask: int, attr: Attr) -> Attr:
        """Change mode/uid/gid/times/flags (and size, through truncate) as chmod/chown/utimens."""
        if self.conf.read_only:
            raise err(errno.EROFS)
        ino = self._check_root(ino)
        if set_mask & SET_ATTR_SIZE:
            self.truncate(ctx, ino, attr.length)
        set_mask &= ~SET_ATTR_SIZE
        now = now_ts()

        def fn(tx: Txn) -> Attr:
            cur = tx.get_attr(ino)
            if cur is None:
                raise err(errno.ENOENT)
            if cur.parent > TRASH_INODE:
                raise err(errno.EPERM)
            new = _merge_attr(self, ctx, set_mask, cur, attr.copy(), now)
            if new is None:
                return cur
            stamp(new, now, ctime=True)
            tx.set_attr(ino, new)
            return new

        return self._txn(fn)

    # --- extended attributes ----------------------------------------------------------------------
    def getxattr(self: Meta, ctx: Context, ino: int, name: str | bytes) -> bytes:
        ino, name = self._check_root(ino), to_bytes(name)
        v = self._txn(lambda tx: tx.get_xattr(ino, name), readonly=True)
        if v is None:
            raise err(errno.ENODATA)
        return v

    def listxattr(self: Meta, ctx: Context, ino: int) -> list[bytes]:
        ino = self._check_root(ino)

        def fn(tx: Txn) -> list[bytes]:
            if tx.get_attr(ino) is None:
                raise err(errno.ENOENT)
            return sorted(tx.list_xattrs(ino))

        return self._txn(fn, readonly=True)

    def setxattr(self: Meta, ctx: Context, ino: int, name: str | bytes, value: bytes, flags: int = 0) -> None:
        if self.conf.read_only:
            raise err(errno.EROFS)
        ino, name = self._check_root(ino), to_bytes(name)
        if not name or flags not in (0, XATTR_CREATE, XATTR_REPLACE):
            raise err(errno.EINVAL)

        def fn(tx: Txn) -> None:
            if tx.get_attr(ino) is None:
                raise err(errno.ENOENT)
            cur = tx.get_xattr(ino, name)
            if flags == XATTR_CREATE and cur is not None:
                raise err(errno.EEXIST)
            if flags == XATTR_REPLACE and cur is None:
                raise err(errno.ENODATA)
            if cur != value:
                tx.set_xattr(ino, name, bytes(value))

        self._txn(fn)

    def removexattr(self: Meta, ctx: Context, ino: int, name: str | bytes) -> None:
        if self.conf.read_only:
            raise err(errno.EROFS)
        ino, name = self._check_root(ino), to_bytes(name)
        if not name:
            raise err(errno.EINVAL)

        def fn(tx: Txn) -> None:
            if tx.get_xattr(ino, name) is None:
                raise err(errno.ENODATA)
            tx.delete_xattr(ino, name)

        self._txn(fn)


def _merge_attr(m: Meta, ctx: Context, set_mask: int, cur: Attr, attr: Attr, now: tuple[int, int]) -> Attr | None:
    """JuiceFS mergeAttr: the new attributes, or None when nothing changes; raises on EPERM/EACCES."""
    new = cur.copy()
    changed = False
    if set_mask & (SET_ATTR_UID | SET_ATTR_GID) and set_mask & SET_ATTR_MODE:
        attr.mode |= cur.mode & 0o6000
    if cur.mode & 0o6000 and set_mask & (SET_ATTR_UID | SET_ATTR_GID):
        if cur.typ != TYPE_DIRECTORY:  # chown clears SUID/SGID (SGID kept if not group-exec, for root)
            if ctx.uid != 0 or (cur.mode >> 3) & 1:
                new.mode &= 0o1777
                attr.mode &= 0o1777
            else:
                new.mode &= 0o3777
                attr.mode &= 0o3777
        changed = True
    if set_mask & SET_ATTR_GID:
        if ctx.uid != 0 and ctx.uid != cur.uid:
            raise err(errno.EPERM)
        if cur.gid != attr.gid:
            if ctx.check_permission and ctx.uid != 0 and attr.gid not in ctx.gids:
                raise err(errno.EPERM)
            new.gid = attr.gid
            changed = True
    if set_mask & SET_ATTR_UID and cur.uid != attr.uid:
        if ctx.check_permission and ctx.uid != 0:
            raise err(errno.EPERM)
        new.uid = attr.uid
        changed = True
    if set_mask & SET_ATTR_MODE:
        if ctx.uid != 0 and attr.mode & 0o2000 and ctx.gid != cur.gid:
            attr.mode &= 0o5777
        if attr.mode != cur.mode:
            if ctx.uid != 0 and ctx.uid != cur.uid and (
                    cur.mode & 0o1777 != attr.mode & 0o1777 or attr.mode & 0o2000 > cur.mode & 0o2000
                    or attr.mode & 0o4000 > cur.mode & 0o4000):
                raise err(errno.EPERM)
            new.mode = attr.mode
            changed = True

    def may_write() -> None:
        if ctx.uid != cur.uid:
            try:
                m._access(ctx, cur, MODE_MASK_W)
            except OSError:
                raise err(errno.EACCES) from None

    if set_mask & SET_ATTR_ATIME_NOW or (set_mask & SET_ATTR_ATIME and attr.atime < 0):
        may_write()
        new.atime, new.atimensec = now
        changed = True
    elif set_mask & SET_ATTR_ATIME and (cur.atime, cur.atimensec) != (attr.atime, attr.atimensec):
        if cur.uid == 0 and ctx.uid != 0:
            raise err(errno.EPERM)
        may_write()
        new.atime, new.atimensec = attr.atime, attr.atimensec
        changed = True
    if set_mask & SET_ATTR_MTIME_NOW or (set_mask & SET_ATTR_MTIME and attr.mtime < 0):
        may_write()
        new.mtime, new.mtimensec = now
        changed = True
    elif set_mask & SET_ATTR_MTIME and (cur.mtime, cur.mtimensec) != (attr.mtime, attr.mtimensec):
        if cur.uid == 0 and ctx.uid != 0:
            raise err(errno.EPERM)
        may_write()
        new.mtime, new.mtimensec = attr.mtime, attr.mtimensec
        changed = True
    if set_mask & SET_ATTR_FLAG:
        new.flags = attr.flags
        changed = True
    return new if changed else None
