"""Namespace operations of the Meta API: lookup, create, remove, rename, link, attributes, xattrs.

Each operation reads what it needs first, checks, then writes, all inside one engine
transaction (engines may buffer writes, so a read after a write is never relied upon).
"""

from __future__ import annotations

import errno
import logging
import os
import time
from typing import TYPE_CHECKING

from .base_common import (
    FLAG_SKIP_TRASH,
    MODE_MASK_R,
    MODE_MASK_W,
    MODE_MASK_X,
    ROOT_CTX,
    Context,
    Exists,
    check_name,
    err,
    is_trash,
    now_ts,
    since,
    stamp,
    to_bytes,
)
from .codec import align4k
from .engine import Txn
from .types import (
    FLAG_APPEND,
    FLAG_IMMUTABLE,
    MAX_NAME,
    MAX_SYMLINK,
    RENAME_EXCHANGE,
    RENAME_NOREPLACE,
    RENAME_RESTORE,
    RENAME_WHITEOUT,
    ROOT_INODE,
    TRASH_INODE,
    TRASH_NAME,
    TYPE_DIRECTORY,
    TYPE_FILE,
    TYPE_SOCKET,
    TYPE_SYMLINK,
    Attr,
    Entry,
)

if TYPE_CHECKING:
    from .base import Meta

logger = logging.getLogger(__name__)
TRASH = TRASH_NAME.encode()
NODE_SPACE = 4 << 10  # align4k(0): what every node costs in usedSpace


class NamespaceOps:
    # --- lookup and attributes ---------------------------------------------------------------
    def lookup(self: Meta, ctx: Context, parent: int, name: str | bytes, check_perm: bool = True) -> tuple[int, Attr]:
        """(inode, attributes) of `name` in directory `parent`; handles '.', '..' and /.trash."""
        name = to_bytes(name)
        orig_parent = parent
        parent = self._check_root(parent)
        if check_perm:
            self.access(ctx, parent, MODE_MASK_X)
        if name == b"..":
            if parent == self.root:
                name = b"."
            else:
                pattr = self.getattr(parent)
                if pattr.typ != TYPE_DIRECTORY:
                    raise err(errno.ENOTDIR)
                return pattr.parent, self.getattr(pattr.parent)
        if name == b".":
            return parent, self.getattr(parent)
        if orig_parent == ROOT_INODE and name == TRASH and self.root == ROOT_INODE:
            return TRASH_INODE, self.getattr(TRASH_INODE)

        def fn(tx: Txn) -> tuple[int, Attr]:
            found = tx.lookup_entry(parent, name)
            if found is None:
                raise err(errno.ENOENT)
            typ, ino, attr = found
            if attr is None:
                logger.warning("no attribute for inode %d (%d, %r)", ino, parent, name)
                attr = Attr(typ=typ)
            return ino, attr

        return self._txn(fn, readonly=True)

    # --- creation ---------------------------------------------------------------------------------
    def mknod(self: Meta, ctx: Context, parent: int, name: str | bytes, typ: int, mode: int, rdev: int = 0,
              path: bytes = b"", cumask: int | None = None) -> tuple[int, Attr]:
        """Create a node of any type; returns (inode, attributes)."""
        name = to_bytes(name)
        if typ < TYPE_FILE or typ > TYPE_SOCKET:
            raise err(errno.EINVAL)
        if is_trash(parent) or (parent == ROOT_INODE and name == TRASH and self.root == ROOT_INODE):
            raise err(errno.EPERM)
        if self.conf.read_only:
            raise err(errno.EROFS)
        if name in (b".", b".."):
            raise err(errno.EEXIST)
        check_name(name)
        parent = self._check_root(parent)
        self._load_usage()
        self._check_quota(NODE_SPACE, 1)
        ino = self._next_inode()
        attr = self._do_mknod(ctx, parent, name, typ, mode, ctx.umask if cumask is None else cumask, rdev, path, ino)
        self._update_dir_stat(parent, 0, NODE_SPACE, 1)
        if typ == TYPE_DIRECTORY:
            self._update_dir_stat(ino, 0, 0, 0)  # creates the (empty) record
        return ino, attr

    def mkdir(self: Meta, ctx: Context, parent: int, name: str | bytes, mode: int,
              cumask: int | None = None) -> tuple[int, Attr]:
        return self.mknod(ctx, parent, name, TYPE_DIRECTORY, mode, cumask=cumask)

    def symlink(self: Meta, ctx: Context, parent: int, name: str | bytes, target: str | bytes) -> tuple[int, Attr]:
        target = to_bytes(target)
        if not target or len(target) > MAX_SYMLINK or b"\0" in target:
            raise err(errno.EINVAL)
        return self.mknod(ctx, parent, name, TYPE_SYMLINK, 0o777, path=target, cumask=0)

    def create(self: Meta, ctx: Context, parent: int, name: str | bytes, mode: int, flags: int = 0,
               cumask: int | None = None) -> tuple[int, Attr]:
        """Create (or, without O_EXCL, open the existing) regular file; the file is left open."""
        try:
            ino, attr = self.mknod(ctx, parent, name, TYPE_FILE, mode, cumask=cumask)
        except Exists as e:
            if flags & os.O_EXCL or e.attr is None or e.attr.typ != TYPE_FILE:
                raise err(errno.EEXIST) from None
            ino, attr = e.ino, e.attr
        self._opened(ino)
        return ino, attr

    def _check_new_entry_parent(self: Meta, ctx: Context, pattr: Attr) -> None:
        """May ctx add an entry to the directory with attributes pattr? (mknod, link)"""
        if pattr.typ != TYPE_DIRECTORY:
            raise err(errno.ENOTDIR)
        if pattr.parent > TRASH_INODE:  # a directory already moved to the trash
            raise err(errno.ENOENT)
        self._access(ctx, pattr, MODE_MASK_W | MODE_MASK_X)
        if pattr.flags & FLAG_IMMUTABLE:
            raise err(errno.EPERM)

    def _do_mknod(self: Meta, ctx: Context, parent: int, name: bytes, typ: int, mode: int, cumask: int,
                  rdev: int, path: bytes, ino: int) -> Attr:
        now = now_ts()
        skip = self.conf.skip_dir_mtime

        def fn(tx: Txn) -> Attr:
            pattr, found = tx.get_many(("attr", parent), ("entry", parent, name))  # one round trip
            if pattr is None:
                raise err(errno.ENOENT)
            self._check_new_entry_parent(ctx, pattr)
            if found is not None:
                ftyp, fino = found
                fattr = tx.get_attr(fino) if typ in (TYPE_FILE, TYPE_DIRECTORY) else None
                raise Exists(fino, fattr or Attr(typ=ftyp, parent=parent))
            attr = Attr(typ=typ, uid=ctx.uid, gid=ctx.gid, parent=parent)
            attr.flags = pattr.flags & FLAG_SKIP_TRASH
            attr.mode = mode & 0o7777 & ~cumask
            if typ == TYPE_DIRECTORY:
                attr.nlink, attr.length = 2, 4 << 10
            else:
                attr.nlink = 1
                attr.length = len(path) if typ == TYPE_SYMLINK else 0
                attr.rdev = 0 if typ == TYPE_SYMLINK else rdev
            update_parent = False
            if parent != TRASH_INODE:
                if typ == TYPE_DIRECTORY:
                    pattr.nlink += 1
                    update_parent = True
                if update_parent or since(pattr.mtime, pattr.mtimensec, now) >= skip:
                    stamp(pattr, now, mtime=True, ctime=True)
                    update_parent = True
            stamp(attr, now, atime=True, mtime=True, ctime=True)
            if pattr.mode & 0o2000:  # setgid directory: inherit its group
                attr.gid = pattr.gid
                if typ == TYPE_DIRECTORY:
                    attr.mode |= 0o2000
                elif attr.mode & 0o2010 == 0o2010 and ctx.uid != 0 and pattr.gid not in ctx.gids:
                    attr.mode &= ~0o2000
            tx.set_entry(parent, name, typ, ino)
            if update_parent:
                tx.set_attr(parent, pattr)
            tx.set_attr(ino, attr)
            if typ == TYPE_SYMLINK:
                tx.set_symlink(ino, path)
            tx.incr_counter("usedSpace", NODE_SPACE)
            tx.incr_counter("totalInodes", 1)
            return attr

        return self._txn(fn)

    def readlink(self: Meta, ctx: Context, ino: int) -> bytes:
        def fn(tx: Txn) -> bytes:
            attr = tx.get_attr(ino)
            if attr is None:
                raise err(errno.ENOENT)
            if attr.typ != TYPE_SYMLINK:
                raise err(errno.EINVAL)
            target = tx.get_symlink(ino)
            if not target:
                raise err(errno.EIO)
            return target

        target = self._txn(fn, readonly=True)
        self._touch_atime(ino)
        return target

    # --- trash ------------------------------------------------------------------------------------
    def _check_trash(self: Meta, parent: int) -> int:
        """The inode of the current hour's trash directory (created on demand), or 0."""
        if is_trash(parent) or self._format().TrashDays <= 0:
            return 0
        name = time.strftime("%Y-%m-%d-%H", time.gmtime())
        with self._lock:
            if self._subtrash[0] == name:
                return self._subtrash[1]
        try:
            ino, _ = self.lookup(ROOT_CTX, TRASH_INODE, name, check_perm=False)
        except OSError as e:
            if e.errno != errno.ENOENT:
                raise
            ino = TRASH_INODE + self.engine.incr_counter("nextTrash", 1)
            try:
                self._do_mknod(ROOT_CTX, TRASH_INODE, name.encode(), TYPE_DIRECTORY, 0o555, 0, 0, b"", ino)
            except Exists as ex:
                ino = ex.ino
        if ino <= TRASH_INODE:
            raise err(errno.EBADF)
        with self._lock:
            self._subtrash = (name, ino)
        return ino

    @staticmethod
    def _trash_entry(parent: int, ino: int, name: bytes) -> bytes:
        return (b"%d-%d-" % (parent, ino) + name)[:MAX_NAME]

    # --- removal ----------------------------------------------------------------------------------
    def _removable_entry(self: Meta, tx: Txn, ctx: Context, parent: int, name: bytes,
                         want_dir: bool) -> tuple[int, int, Attr]:
        """(type, inode, parent attr) of an entry that ctx may remove with unlink (want_dir False)
        or rmdir (True); raises the errno POSIX gives otherwise."""
        found, pattr = tx.get_many(("entry", parent, name), ("attr", parent))  # one round trip
        if found is None:
            raise err(errno.ENOENT)
        typ, ino = found
        if (typ == TYPE_DIRECTORY) != want_dir:
            raise err(errno.ENOTDIR if want_dir else errno.EPERM)
        if pattr is None:
            raise err(errno.ENOENT)
        if pattr.typ != TYPE_DIRECTORY:
            raise err(errno.ENOTDIR)
        self._access(ctx, pattr, MODE_MASK_W | MODE_MASK_X)
        if pattr.flags & (FLAG_APPEND | FLAG_IMMUTABLE):
            raise err(errno.EPERM)
        return typ, ino, pattr

    def unlink(self: Meta, ctx: Context, parent: int, name: str | bytes, skip_trash: bool = False) -> None:
        name = to_bytes(name)
        if (parent == ROOT_INODE and name == TRASH and self.root == ROOT_INODE) or (is_trash(parent) and ctx.uid != 0):
            raise err(errno.EPERM)
        if self.conf.read_only:
            raise err(errno.EROFS)
        parent = self._check_root(parent)
        trash0 = 0 if skip_trash else self._check_trash(parent)
        now = now_ts()
        skip = self.conf.skip_dir_mtime

        def fn(tx: Txn) -> tuple[int, int, Attr, int, bool]:
            trash = trash0
            typ, ino, pattr = self._removable_entry(tx, ctx, parent, name, want_dir=False)
            attr = tx.get_attr(ino)
            tname = self._trash_entry(parent, ino, name)
            opened = False
            if attr is not None:
                if ctx.uid != 0 and pattr.mode & 0o1000 and ctx.uid not in (pattr.uid, attr.uid):
                    raise err(errno.EACCES)
                if attr.flags & (FLAG_APPEND | FLAG_IMMUTABLE):
                    raise err(errno.EPERM)
                if attr.flags & FLAG_SKIP_TRASH:
                    trash = 0
                if trash and attr.nlink > 1 and tx.get_entry(trash, tname) is not None:
                    trash = 0
                stamp(attr, now, ctime=True)
                if not trash:
                    attr.nlink -= 1
                    if typ == TYPE_FILE and attr.nlink == 0:
                        opened = self._is_open(ino)
                elif attr.parent > 0:
                    attr.parent = trash
            else:
                logger.warning("no attribute for inode %d (%d, %r)", ino, parent, name)
                trash = 0
                attr = Attr(typ=typ, nlink=0)
            tx.delete_entry(parent, name)
            if not is_trash(parent) and since(pattr.mtime, pattr.mtimensec, now) >= skip:
                stamp(pattr, now, mtime=True, ctime=True)
                tx.set_attr(parent, pattr)
            if attr.nlink > 0:
                tx.set_attr(ino, attr)
                if trash:
                    tx.set_entry(trash, tname, typ, ino)
                    if attr.parent == 0:
                        tx.incr_parent(ino, trash, 1)
                if attr.parent == 0:
                    tx.incr_parent(ino, parent, -1)
            else:
                self._drop_node(tx, ino, attr, opened, now)
            return typ, ino, attr, trash, opened

        typ, ino, attr, trash, opened = self._txn(fn)
        if not trash and typ == TYPE_FILE and attr.nlink == 0:
            self._file_deleted(ino, attr.length, opened)
        diff = attr.length if typ == TYPE_FILE else 0
        self._update_dir_stat(parent, -diff, -align4k(diff), -1)

    def _drop_node(self: Meta, tx: Txn, ino: int, attr: Attr, opened: bool, now: tuple[int, int]) -> None:
        """The last link of a node is gone (inside the transaction that removed it)."""
        if attr.typ == TYPE_FILE:
            if opened:
                tx.set_attr(ino, attr)
                tx.add_sustained(self.sid, ino)
            else:
                tx.add_delfile(ino, attr.length, now[0])
                tx.delete_attr(ino)
                tx.incr_counter("usedSpace", -align4k(attr.length))
                tx.incr_counter("totalInodes", -1)
        else:
            if attr.typ == TYPE_SYMLINK:
                tx.delete_symlink(ino)
            tx.delete_attr(ino)
            tx.incr_counter("usedSpace", -NODE_SPACE)
            tx.incr_counter("totalInodes", -1)
        tx.delete_xattrs(ino)
        if attr.parent == 0:
            tx.delete_parents(ino)

    def rmdir(self: Meta, ctx: Context, parent: int, name: str | bytes, skip_trash: bool = False) -> None:
        name = to_bytes(name)
        if name == b".":
            raise err(errno.EINVAL)
        if name == b"..":
            raise err(errno.ENOTEMPTY)
        if ((parent == ROOT_INODE and name == TRASH and self.root == ROOT_INODE) or parent == TRASH_INODE
                or (is_trash(parent) and ctx.uid != 0)):
            raise err(errno.EPERM)
        if self.conf.read_only:
            raise err(errno.EROFS)
        self._rmdir(ctx, self._check_root(parent), name, skip_trash)

    def _rmdir(self: Meta, ctx: Context, parent: int, name: bytes, skip_trash: bool = False) -> None:
        trash0 = 0 if skip_trash else self._check_trash(parent)
        now = now_ts()

        def fn(tx: Txn) -> int:
            trash = trash0
            typ, ino, pattr = self._removable_entry(tx, ctx, parent, name, want_dir=True)
            if tx.has_entries(ino):
                raise err(errno.ENOTEMPTY)
            attr = tx.get_attr(ino)
            if attr is not None:
                if ctx.uid != 0 and pattr.mode & 0o1000 and ctx.uid not in (pattr.uid, attr.uid):
                    raise err(errno.EACCES)
                if attr.flags & FLAG_SKIP_TRASH:
                    trash = 0
                if trash:
                    stamp(attr, now, ctime=True)
                    attr.parent = trash
            else:
                logger.warning("no attribute for inode %d (%d, %r)", ino, parent, name)
                trash = 0
            pattr.nlink -= 1
            stamp(pattr, now, mtime=True, ctime=True)
            if not is_trash(parent):
                tx.set_attr(parent, pattr)
            tx.delete_entry(parent, name)
            if trash:
                assert attr is not None
                tx.set_attr(ino, attr)
                tx.set_entry(trash, self._trash_entry(parent, ino, name), TYPE_DIRECTORY, ino)
            else:
                tx.delete_attr(ino)
                tx.delete_xattrs(ino)
                tx.incr_counter("usedSpace", -NODE_SPACE)
                tx.incr_counter("totalInodes", -1)
            return ino

        self._txn(fn)
        self._update_dir_stat(parent, 0, -NODE_SPACE, -1)

    def remove(self: Meta, ctx: Context, parent: int, name: str | bytes, skip_trash: bool = False) -> int:
        """Remove `name` and everything below it (rm -r); returns the number of nodes removed."""
        name = to_bytes(name)
        ino, attr = self.lookup(ctx, parent, name)
        count = 0
        if attr.typ == TYPE_DIRECTORY:
            self.access(ctx, ino, MODE_MASK_W | MODE_MASK_X | MODE_MASK_R, attr)
            for e in self._txn(lambda tx: tx.list_entries(ino), readonly=True):
                count += self.remove(ctx, ino, e[0], skip_trash)
            if parent == TRASH_INODE:
                self._rmdir(ctx, parent, name, skip_trash)
            else:
                self.rmdir(ctx, parent, name, skip_trash)
        else:
            self.unlink(ctx, parent, name, skip_trash)
        return count + 1

    # --- rename and link --------------------------------------------------------------------------
    def rename(self: Meta, ctx: Context, psrc: int, nsrc: str | bytes, pdst: int, ndst: str | bytes,
               flags: int = 0) -> tuple[int, Attr]:
        """Move an entry; RENAME_NOREPLACE and RENAME_EXCHANGE as renameat2(2)."""
        nsrc, ndst = to_bytes(nsrc), to_bytes(ndst)
        at_root = self.root == ROOT_INODE
        if at_root and ((psrc == ROOT_INODE and nsrc == TRASH) or (pdst == ROOT_INODE and ndst == TRASH)):
            raise err(errno.EPERM)
        if is_trash(pdst) or (is_trash(psrc) and ctx.uid != 0):
            raise err(errno.EPERM)
        if self.conf.read_only:
            raise err(errno.EROFS)
        check_name(ndst)
        if flags in (RENAME_WHITEOUT, RENAME_NOREPLACE | RENAME_WHITEOUT):
            raise err(errno.ENOTSUP)
        if flags not in (0, RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_NOREPLACE | RENAME_RESTORE):
            raise err(errno.EINVAL)
        psrc, pdst = self._check_root(psrc), self._check_root(pdst)
        exchange = flags == RENAME_EXCHANGE
        trash0 = self._check_trash(pdst)
        self._check_not_ancestor(psrc, nsrc, pdst)
        if exchange and self._txn(lambda tx: tx.get_entry(psrc, nsrc), readonly=True) is not None:
            self._check_not_ancestor(pdst, ndst, psrc)
        now = now_ts()
        skip = self.conf.skip_dir_mtime

        def fn(tx: Txn) -> tuple:
            trash = trash0
            # both entries and both parents in one round trip, then the two nodes in another
            found, dfound, sattr, dattr = tx.get_many(("entry", psrc, nsrc), ("entry", pdst, ndst),
                                                      ("attr", psrc), ("attr", pdst))
            if found is None:
                raise err(errno.ENOENT)
            typ, ino = found
            if psrc == pdst and nsrc == ndst:
                return ino, tx.get_attr(ino) or Attr(typ=typ), 0, None, -1, False  # -1: nothing done
            nodes = tx.get_attrs([ino] if dfound is None else [ino, dfound[1]])
            iattr = nodes[0]
            if sattr is None or dattr is None or iattr is None:
                raise err(errno.ENOENT)
            if sattr.typ != TYPE_DIRECTORY:
                raise err(errno.ENOTDIR)
            self._access(ctx, sattr, MODE_MASK_W | MODE_MASK_X)
            if dattr.typ != TYPE_DIRECTORY:
                raise err(errno.ENOTDIR)
            if not flags & RENAME_RESTORE and dattr.parent > TRASH_INODE:
                raise err(errno.ENOENT)
            self._access(ctx, dattr, MODE_MASK_W | MODE_MASK_X)
            if ino == pdst or ino == dattr.parent:
                raise err(errno.EINVAL)
            if (sattr.flags & (FLAG_APPEND | FLAG_IMMUTABLE) or dattr.flags & FLAG_IMMUTABLE
                    or iattr.flags & (FLAG_APPEND | FLAG_IMMUTABLE)):
                raise err(errno.EPERM)
            if (psrc != pdst and sattr.mode & 0o1000 and ctx.uid != 0 and ctx.uid != iattr.uid
                    and (ctx.uid != sattr.uid or iattr.typ == TYPE_DIRECTORY)):
                raise err(errno.EACCES)
            dino, dtyp, tattr, opened = 0, 0, None, False
            supdate = dupdate = False
            if dfound is not None:
                if flags & RENAME_NOREPLACE:
                    raise err(errno.EEXIST)
                dtyp, dino = dfound
                tattr = nodes[1]
                if tattr is None:
                    logger.warning("no attribute for inode %d (%d, %r)", dino, pdst, ndst)
                    trash = 0
                    tattr = Attr(typ=dtyp, nlink=0)
                if tattr.flags & (FLAG_APPEND | FLAG_IMMUTABLE):
                    raise err(errno.EPERM)
                if tattr.flags & FLAG_SKIP_TRASH:
                    trash = 0
                stamp(tattr, now, ctime=True)
                if exchange:
                    if psrc != pdst:
                        if dtyp == TYPE_DIRECTORY:
                            tattr.parent = psrc
                            dattr.nlink -= 1
                            sattr.nlink += 1
                            supdate = dupdate = True
                        elif tattr.parent > 0:
                            tattr.parent = psrc
                elif dino == ino:
                    return ino, iattr, 0, None, -1, False
                elif typ == TYPE_DIRECTORY and dtyp != TYPE_DIRECTORY:
                    raise err(errno.ENOTDIR)
                elif typ != TYPE_DIRECTORY and dtyp == TYPE_DIRECTORY:
                    raise err(errno.EISDIR)
                elif dtyp == TYPE_DIRECTORY:
                    if tx.has_entries(dino):
                        raise err(errno.ENOTEMPTY)
                    dattr.nlink -= 1
                    dupdate = True
                    if trash:
                        tattr.parent = trash
                elif not trash:
                    tattr.nlink -= 1
                    if dtyp == TYPE_FILE and tattr.nlink == 0:
                        opened = self._is_open(dino)
                elif tattr.parent > 0:
                    tattr.parent = trash
                if ctx.uid != 0 and dattr.mode & 0o1000 and ctx.uid not in (dattr.uid, tattr.uid):
                    raise err(errno.EACCES)
            elif exchange:
                raise err(errno.ENOENT)
            if ctx.uid != 0 and sattr.mode & 0o1000 and ctx.uid not in (sattr.uid, iattr.uid):
                raise err(errno.EACCES)
            if psrc != pdst:
                if typ == TYPE_DIRECTORY:
                    iattr.parent = pdst
                    sattr.nlink -= 1
                    dattr.nlink += 1
                    supdate = dupdate = True
                elif iattr.parent > 0:
                    iattr.parent = pdst
            if supdate or since(sattr.mtime, sattr.mtimensec, now) >= skip:
                stamp(sattr, now, mtime=True, ctime=True)
                supdate = True
            if dupdate or since(dattr.mtime, dattr.mtimensec, now) >= skip:
                stamp(dattr, now, mtime=True, ctime=True)
                dupdate = True
            stamp(iattr, now, ctime=True)

            if exchange:
                tx.set_entry(psrc, nsrc, dtyp, dino)
                tx.set_attr(dino, tattr)
                if psrc != pdst and tattr.parent == 0:
                    tx.incr_parent(dino, psrc, 1)
                    tx.incr_parent(dino, pdst, -1)
            else:
                tx.delete_entry(psrc, nsrc)
                if dino:
                    if trash:
                        tx.set_attr(dino, tattr)
                        tx.set_entry(trash, self._trash_entry(pdst, dino, ndst), dtyp, dino)
                        if tattr.parent == 0:
                            tx.incr_parent(dino, trash, 1)
                            tx.incr_parent(dino, pdst, -1)
                    elif dtyp != TYPE_DIRECTORY and tattr.nlink > 0:
                        tx.set_attr(dino, tattr)
                        if tattr.parent == 0:
                            tx.incr_parent(dino, pdst, -1)
                    elif dtyp == TYPE_DIRECTORY:
                        tx.delete_attr(dino)
                        tx.delete_xattrs(dino)
                        tx.incr_counter("usedSpace", -NODE_SPACE)
                        tx.incr_counter("totalInodes", -1)
                    else:
                        self._drop_node(tx, dino, tattr, opened, now)
            if psrc != pdst:
                if not is_trash(psrc) and supdate:
                    tx.set_attr(psrc, sattr)
                if iattr.parent == 0:
                    tx.incr_parent(ino, pdst, 1)
                    tx.incr_parent(ino, psrc, -1)
            tx.set_attr(ino, iattr)
            tx.set_entry(pdst, ndst, typ, ino)
            if dupdate:
                tx.set_attr(pdst, dattr)
            return ino, iattr, dino, tattr, trash, opened

        ino, iattr, dino, tattr, trash, opened = self._txn(fn)
        if trash == -1:
            return ino, iattr
        diff = iattr.length if iattr.typ == TYPE_FILE else 0
        if psrc != pdst:
            self._update_dir_stat(psrc, -diff, -align4k(diff), -1)
            self._update_dir_stat(pdst, diff, align4k(diff), 1)
        if dino and not exchange:
            tdiff = tattr.length if tattr.typ == TYPE_FILE else 0
            self._update_dir_stat(pdst, -tdiff, -align4k(tdiff), -1)
            if not trash and tattr.typ == TYPE_FILE and tattr.nlink == 0:
                self._file_deleted(dino, tattr.length, opened)
        return ino, iattr

    def _check_not_ancestor(self: Meta, psrc: int, nsrc: bytes, pdst: int) -> None:
        """EINVAL when the directory psrc/nsrc is pdst or one of its ancestors."""
        found = self._txn(lambda tx: tx.get_entry(psrc, nsrc), readonly=True)
        if found is None or found[0] != TYPE_DIRECTORY:
            return
        ino = found[1]
        cur, seen = pdst, 0
        while cur not in (ROOT_INODE, self.root) and seen < 10000:
            if cur == ino:
                raise err(errno.EINVAL)
            a = self._txn(lambda tx, c=cur: tx.get_attr(c), readonly=True)
            if a is None or a.parent == 0 or is_trash(cur):
                return
            cur, seen = a.parent, seen + 1
        if cur == ino:
            raise err(errno.EINVAL)

    def link(self: Meta, ctx: Context, ino: int, parent: int, name: str | bytes) -> Attr:
        """Add a hard link; from now on the file's parents are tracked apart (attr.parent = 0)."""
        name = to_bytes(name)
        if is_trash(parent) or (parent == ROOT_INODE and name == TRASH and self.root == ROOT_INODE):
            raise err(errno.EPERM)
        if self.conf.read_only:
            raise err(errno.EROFS)
        check_name(name)
        if name in (b".", b".."):
            raise err(errno.EEXIST)
        parent = self._check_root(parent)
        now = now_ts()
        skip = self.conf.skip_dir_mtime

        def fn(tx: Txn) -> Attr:
            pattr, iattr = tx.get_attrs([parent, ino])
            if pattr is None or iattr is None:
                raise err(errno.ENOENT)
            self._check_new_entry_parent(ctx, pattr)
            if iattr.typ == TYPE_DIRECTORY:
                raise err(errno.EPERM)
            if iattr.flags & (FLAG_APPEND | FLAG_IMMUTABLE):
                raise err(errno.EPERM)
            if tx.get_entry(parent, name) is not None:
                raise err(errno.EEXIST)
            if since(pattr.mtime, pattr.mtimensec, now) >= skip:
                stamp(pattr, now, mtime=True, ctime=True)
                tx.set_attr(parent, pattr)
            old_parent = iattr.parent
            iattr.parent = 0
            stamp(iattr, now, ctime=True)
            iattr.nlink += 1
            tx.set_entry(parent, name, iattr.typ, ino)
            tx.set_attr(ino, iattr)
            if old_parent > 0:
                tx.incr_parent(ino, old_parent, 1)
            tx.incr_parent(ino, parent, 1)
            return iattr

        attr = self._txn(fn)
        self._update_dir_stat(parent, attr.length, align4k(attr.length), 1)
        return attr

    # --- directories ------------------------------------------------------------------------------
    def readdir(self: Meta, ctx: Context, ino: int, plus: bool = False) -> list[Entry]:
        """All entries of a directory, starting with '.' and '..' (attributes when plus)."""
        ino = self._check_root(ino)
        attr = self.getattr(ino)
        if attr.typ != TYPE_DIRECTORY:
            raise err(errno.ENOTDIR)
        self.access(ctx, ino, MODE_MASK_R | (MODE_MASK_X if plus else 0), attr)
        parent = self.root if ino == self.root else attr.parent
        out = [Entry(b".", ino, TYPE_DIRECTORY, attr if plus else None),
               Entry(b"..", parent, TYPE_DIRECTORY, None)]

        def fn(tx: Txn) -> list[Entry]:
            es = [Entry(n, i, t) for n, t, i in tx.list_entries(ino)]
            if plus and es:
                for e, a in zip(es, tx.get_attrs([e.inode for e in es])):
                    e.attr = a if a is not None else Attr(typ=e.typ)
            return es

        out.extend(self._txn(fn, readonly=True))
        self._touch_atime(ino)
        return out
