"""The pyfuse3 adapter: kernel requests → VFS calls. Nothing else lives here.

Every handler funnels through `_call`, which runs the (synchronous, thread-safe) VFS call in a
worker thread under one CapacityLimiter, so a slow Redis/SQL/S3 round trip never stalls the trio
loop that reads /dev/fuse. Only FUSEError may leave a handler (anything else ends pyfuse3.main()):
FsError becomes its errno, any other exception EIO with one logged traceback per (op, type).

Bookkeeping (lookup counts, the Context of each open handle) is touched only on the trio thread,
so it needs no lock. See docs/dev/concurrency.md.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import pyfuse3
import trio

from .. import metrics
from ..errors import FsError
from ..meta.base_common import Context
from ..meta.base_lock import MAX_OFFSET
from ..meta.types import TYPE_DIRECTORY, Attr, Entry
from ..vfs.internal import LOG_FORMATS, LOG_INODE, AccessLog, describe, is_internal, is_special
from .convert import (SPECIAL_TIMEOUT, GroupCache, bare_entry, entry_attributes, make_context, request_ids,
                      setattr_request, statvfs)

log = logging.getLogger(__name__)

T = TypeVar("T")
# pyjuicefs's pyfuse3 patch (scripts/build-pyfuse3.sh) adds the lock, fallocate and copy_file_range
# handlers; an unpatched pyfuse3 never calls those methods below.
LOCKS_SUPPORTED = hasattr(pyfuse3.Operations, "flock")
Ids = tuple[int, int, int, int]  # uid, gid, pid, umask of a request
DEFAULT_THREADS = 64


class FuseOps(pyfuse3.Operations):
    """pyfuse3 Operations over a pyjuicefs VFS."""

    _readahead_set = False  # set_readahead() was tried (at the first open)

    # The VFS is not asked for '.' and '..' by name: without export support the kernel never does.
    supports_dot_lookup = False

    def __init__(self, vfs: Any, *, enable_xattr: bool = False, writeback_cache: bool = False,
                 threads: int = DEFAULT_THREADS, group_ttl: float = 5.0) -> None:
        super().__init__()
        self.vfs = vfs
        conf = vfs.conf
        self.attr_timeout = float(conf.attr_timeout)
        self.entry_timeout = float(conf.entry_timeout)
        self.dir_entry_timeout = float(conf.dir_entry_timeout)
        self.enable_xattr = enable_xattr
        self.enable_writeback_cache = writeback_cache
        conf.kernel_writeback_cache = writeback_cache  # handles then leave offsets to the kernel
        self.limiter = trio.CapacityLimiter(max(1, threads))
        self.groups = GroupCache(ttl=group_ttl)
        self.lookups: dict[int, int] = {}  # inode -> kernel lookup count (trio thread only)
        # inode -> (size, mtime, mtimensec) last sent to the kernel; written from worker threads
        # (single dict stores are atomic), read at open to drop attributes another client changed.
        self.sent_attrs: dict[int, tuple[int, int, int]] = {}
        self.handle_ctx: dict[int, Context] = {}  # fh -> Context of the open (trio thread only)
        self._logged: set[tuple[str, str]] = set()
        # Lock owners that took a POSIX lock through this mount (trio thread only): the unlock the
        # patched pyfuse3 sends after every flush is skipped for the others, which hold none.
        self.plock_owners: set[int] = set()
        self.access_log = AccessLog()  # the readers of .accesslog (see the end of this file)
        self.fh_inodes: dict[int, int] = {}  # fh -> inode, for log lines (trio thread only)

    # --- the one wrapper --------------------------------------------------------------------------
    async def _call(self, op: str, ids: Ids | Context | None, fn: Callable[[Context], T]) -> T:
        """Run fn(ctx) in a worker thread; map its errors to FUSEError."""
        try:
            return await trio.to_thread.run_sync(self._work, ids, fn, limiter=self.limiter)
        except FsError as e:
            raise pyfuse3.FUSEError(e.errno or errno.EIO) from None
        except pyfuse3.FUSEError:
            raise
        except Exception as e:  # noqa: BLE001 - must never escape into pyfuse3.main()
            key = (op, type(e).__name__)
            if key not in self._logged:
                self._logged.add(key)
                log.exception("%s failed: %s", op, e)
            else:
                log.error("%s failed: %s: %s", op, type(e).__name__, e)
            raise pyfuse3.FUSEError(errno.EIO) from None

    def _now(self, op: str, fn: Callable[[], T]) -> T:
        """Run a never-blocking VFS fast path (*_ready) on this thread, errors mapped as _call does."""
        try:
            return fn()
        except FsError as e:
            raise pyfuse3.FUSEError(e.errno or errno.EIO) from None
        except Exception:  # must never escape into pyfuse3.main()
            log.exception("%s failed", op)
            raise pyfuse3.FUSEError(errno.EIO) from None

    def _work(self, ids: Ids | Context | None, fn: Callable[[Context], T]) -> T:
        if isinstance(ids, Context):
            ctx = ids
        elif ids is None:
            ctx = Context(check_permission=False)
        else:
            ctx = make_context(*ids, self.groups)
        return fn(ctx)

    def _handle_ctx(self, fh: int) -> Context | None:
        return self.handle_ctx.get(fh)

    # --- replies ----------------------------------------------------------------------------------
    def _attrs(self, ino: int, attr: Attr) -> pyfuse3.EntryAttributes:
        self.sent_attrs[ino] = (attr.length, attr.mtime, attr.mtimensec)
        if is_special(ino):
            return entry_attributes(ino, attr, attr_timeout=SPECIAL_TIMEOUT, entry_timeout=SPECIAL_TIMEOUT)
        ent = self.dir_entry_timeout if attr.typ == TYPE_DIRECTORY else self.entry_timeout
        return entry_attributes(ino, attr, attr_timeout=self.attr_timeout, entry_timeout=ent)

    def _entry(self, e: Entry) -> pyfuse3.EntryAttributes:
        attr = e.attr if e.attr is not None else Attr(typ=e.typ)
        return self._attrs(e.inode, attr)

    def _looked_up(self, ino: int, n: int = 1) -> None:
        self.lookups[ino] = self.lookups.get(ino, 0) + n

    def _file_info(self, fh: int, ino: int) -> pyfuse3.FileInfo:
        if not self._readahead_set:  # the first open: INIT is done, the kernel no longer resets it
            self._readahead_set = True
            conf = getattr(getattr(self.vfs, "meta", None), "conf", None)
            set_readahead(getattr(conf, "mount_point", ""), READAHEAD_KB)
        # keep_cache=False: the kernel drops cached pages at each open (close-to-open consistency);
        # internal files change under the kernel, so they bypass the page cache entirely.
        return pyfuse3.FileInfo(fh=fh, direct_io=is_internal(ino), keep_cache=False)

    # --- lifecycle --------------------------------------------------------------------------------
    def init(self) -> None:
        log.debug("FUSE session initialized")
        if not LOCKS_SUPPORTED:
            log.warning("pyfuse3 %s lacks the lock handlers: flock/fcntl locks stay local to this mount "
                        "and fallocate is not supported (run scripts/build-pyfuse3.sh)",
                        getattr(pyfuse3, "__version__", "?"))

    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        # The VFS keeps no per-inode state for the kernel (as JuiceFS): only the counts here.
        for ino, n in inode_list:
            left = self.lookups.get(ino, 0) - n
            if left > 0:
                self.lookups[ino] = left
            else:
                self.lookups.pop(ino, None)
                self.sent_attrs.pop(ino, None)

    # --- names --------------------------------------------------------------------------------------
    async def lookup(self, parent_inode: int, name: bytes, ctx: Any) -> pyfuse3.EntryAttributes:
        v = self.vfs
        e = await self._call("lookup", request_ids(ctx), lambda c: self._entry(v.lookup(c, parent_inode, name)))
        self._looked_up(e.st_ino)
        return e

    async def getattr(self, inode: int, ctx: Any) -> pyfuse3.EntryAttributes:
        v = self.vfs
        return await self._call("getattr", request_ids(ctx), lambda c: self._attrs(inode, v.getattr(c, inode)))

    async def setattr(self, inode: int, attr: pyfuse3.EntryAttributes, fields: pyfuse3.SetattrFields,
                      fh: int | None, ctx: Any) -> pyfuse3.EntryAttributes:
        v = self.vfs
        mask, new = setattr_request(attr, fields)
        return await self._call("setattr", request_ids(ctx),
                                lambda c: self._attrs(inode, v.setattr(c, inode, mask, new, fh)))

    async def readlink(self, inode: int, ctx: Any) -> bytes:
        v = self.vfs
        return await self._call("readlink", request_ids(ctx), lambda c: v.readlink(c, inode))

    async def mknod(self, parent_inode: int, name: bytes, mode: int, rdev: int, ctx: Any) -> pyfuse3.EntryAttributes:
        v = self.vfs
        e = await self._call("mknod", request_ids(ctx),
                             lambda c: self._entry(v.mknod(c, parent_inode, name, mode, rdev)))
        self._looked_up(e.st_ino)
        return e

    async def mkdir(self, parent_inode: int, name: bytes, mode: int, ctx: Any) -> pyfuse3.EntryAttributes:
        v = self.vfs
        e = await self._call("mkdir", request_ids(ctx), lambda c: self._entry(v.mkdir(c, parent_inode, name, mode)))
        self._looked_up(e.st_ino)
        return e

    async def unlink(self, parent_inode: int, name: bytes, ctx: Any) -> None:
        v = self.vfs
        await self._call("unlink", request_ids(ctx), lambda c: v.unlink(c, parent_inode, name))

    async def rmdir(self, parent_inode: int, name: bytes, ctx: Any) -> None:
        v = self.vfs
        await self._call("rmdir", request_ids(ctx), lambda c: v.rmdir(c, parent_inode, name))

    async def symlink(self, parent_inode: int, name: bytes, target: bytes, ctx: Any) -> pyfuse3.EntryAttributes:
        v = self.vfs
        e = await self._call("symlink", request_ids(ctx),
                             lambda c: self._entry(v.symlink(c, parent_inode, name, target)))
        self._looked_up(e.st_ino)
        return e

    async def rename(self, parent_inode_old: int, name_old: bytes, parent_inode_new: int, name_new: bytes,
                     flags: int, ctx: Any) -> None:
        v = self.vfs
        await self._call("rename", request_ids(ctx),
                         lambda c: v.rename(c, parent_inode_old, name_old, parent_inode_new, name_new, flags))

    async def link(self, inode: int, new_parent_inode: int, new_name: bytes, ctx: Any) -> pyfuse3.EntryAttributes:
        v = self.vfs
        e = await self._call("link", request_ids(ctx),
                             lambda c: self._entry(v.link(c, inode, new_parent_inode, new_name)))
        self._looked_up(e.st_ino)
        return e

    # --- files --------------------------------------------------------------------------------------
    async def open(self, inode: int, flags: int, ctx: Any) -> pyfuse3.FileInfo:
        v = self.vfs
        ids = request_ids(ctx)
        fh, attr, c = await self._call("open", ids, lambda c: (*v.open(c, inode, flags), c))
        self.handle_ctx[fh] = c
        fresh = (attr.length, attr.mtime, attr.mtimensec)
        if self.sent_attrs.get(inode, fresh) != fresh:
            # Changed by another client while the kernel still trusts its cached size (for up to
            # --attr-cache): drop that, or reads would stop at the old length (close-to-open).
            try:
                pyfuse3.invalidate_inode(inode, attr_only=True)
            except OSError as e:  # e.g. ENOENT when the kernel already forgot it
                log.debug("invalidate inode %d: %s", inode, e)
        self.sent_attrs[inode] = fresh
        return self._file_info(fh, inode)

    async def create(self, parent_inode: int, name: bytes, mode: int, flags: int,
                     ctx: Any) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        v = self.vfs

        def work(c: Context) -> tuple[int, pyfuse3.EntryAttributes, Context]:
            fh, entry = v.create(c, parent_inode, name, mode, flags)
            return fh, self._entry(entry), c

        fh, attrs, c = await self._call("create", request_ids(ctx), work)
        self.handle_ctx[fh] = c
        self._looked_up(attrs.st_ino)
        return self._file_info(fh, attrs.st_ino), attrs

    # read, flush and release first try an answer from memory on this thread (the VFS's *_ready
    # methods never block): each thread hop costs two thread wake-ups, which under CPU load dominate
    # these requests. Anything that needs I/O or may fail goes the usual way.
    async def read(self, fh: int, off: int, size: int) -> bytes:
        v = self.vfs
        data = self._now("read", lambda: v.read_ready(fh, off, size))
        if data is not None:
            return data
        return await self._call("read", self._handle_ctx(fh), lambda c: v.read(c, fh, off, size))

    async def write(self, fh: int, off: int, buf: bytes) -> int:
        v = self.vfs
        n = self._now("write", lambda: v.write_ready(fh, off, buf))
        if n is not None:
            return n
        return await self._call("write", self._handle_ctx(fh), lambda c: v.write(c, fh, off, buf))

    async def flush(self, fh: int) -> None:
        # pyfuse3 does not pass the lock owner: the patched pyfuse3 releases the closer's POSIX
        # locks with a setlk(F_UNLCK) right after this (see docs/dev/fuse.md).
        v = self.vfs
        if self._now("flush", lambda: v.flush_ready(fh)):
            return
        await self._call("flush", self._handle_ctx(fh), lambda c: v.flush(c, fh, 0))

    async def fsync(self, fh: int, datasync: bool) -> None:
        v = self.vfs
        await self._call("fsync", self._handle_ctx(fh), lambda c: v.fsync(c, fh, datasync))

    async def release(self, fh: int) -> None:
        v = self.vfs
        try:
            if not self._now("release", lambda: v.release_ready(fh)):
                await self._call("release", self._handle_ctx(fh), lambda c: v.release(c, fh))
        finally:
            self.handle_ctx.pop(fh, None)

    # --- directories ----------------------------------------------------------------------------------
    async def opendir(self, inode: int, ctx: Any) -> int:
        v = self.vfs
        fh, c = await self._call("opendir", request_ids(ctx), lambda c: (v.opendir(c, inode), c))
        self.handle_ctx[fh] = c
        return fh

    async def readdir(self, fh: int, start_id: int, token: Any) -> None:
        v = self.vfs
        entries = await self._call("readdir", self._handle_ctx(fh), lambda c: v.readdir(c, fh, start_id, True))
        # EntryAttributes are built here, lazily: the kernel's buffer holds a few dozen entries, the
        # VFS may return the whole rest of a big directory.
        for e, next_off in entries:
            dot = e.name in (b".", b"..")
            attrs = bare_entry(e.inode) if dot and e.attr is None else self._entry(e)
            if not pyfuse3.readdir_reply(token, e.name, attrs, next_off):
                break
            if not dot:  # the kernel takes a lookup reference for every entry but '.' and '..'
                self._looked_up(e.inode)

    async def releasedir(self, fh: int) -> None:
        v = self.vfs
        try:
            await self._call("releasedir", self._handle_ctx(fh), lambda c: v.releasedir(c, fh))
        finally:
            self.handle_ctx.pop(fh, None)

    async def fsyncdir(self, fh: int, datasync: bool) -> None:
        return None  # directory changes are committed to the metadata engine at once

    async def statfs(self, ctx: Any) -> pyfuse3.StatvfsData:
        v = self.vfs
        return await self._call("statfs", request_ids(ctx), lambda c: statvfs(v.statfs(c, pyfuse3.ROOT_INODE)))

    # --- extended attributes ------------------------------------------------------------------------
    def _check_xattr(self) -> None:
        # Without --enable-xattr JuiceFS answers ENOSYS: the kernel then stops asking (no getxattr of
        # security.capability on every write) and applications see EOPNOTSUPP (== ENOTSUP).
        if not self.enable_xattr:
            raise pyfuse3.FUSEError(errno.ENOSYS)

    async def getxattr(self, inode: int, name: bytes, ctx: Any) -> bytes:
        self._check_xattr()
        v = self.vfs
        return await self._call("getxattr", request_ids(ctx), lambda c: v.getxattr(c, inode, name))

    async def setxattr(self, inode: int, name: bytes, value: bytes, ctx: Any) -> None:
        # pyfuse3 checks XATTR_CREATE/XATTR_REPLACE itself (with a getxattr) and drops the flags.
        self._check_xattr()
        v = self.vfs
        await self._call("setxattr", request_ids(ctx), lambda c: v.setxattr(c, inode, name, value, 0))

    async def listxattr(self, inode: int, ctx: Any) -> list[bytes]:
        self._check_xattr()
        v = self.vfs
        return await self._call("listxattr", request_ids(ctx), lambda c: v.listxattr(c, inode))

    async def removexattr(self, inode: int, name: bytes, ctx: Any) -> None:
        self._check_xattr()
        v = self.vfs
        await self._call("removexattr", request_ids(ctx), lambda c: v.removexattr(c, inode, name))

    # --- locks, space, server-side copies (called only by the patched pyfuse3) ---------------
    # A blocking flock/F_SETLKW waits in its worker thread (the VFS polls the metadata engine), never
    # on the trio loop. The lock's pid (the holder's tgid) replaces the request's thread id, so that
    # F_GETLK on another mount reports it.
    async def flock(self, fh: int, owner: int, op: int, ctx: Any) -> None:
        v = self.vfs
        await self._call("flock", request_ids(ctx), lambda c: v.flock(c, fh, owner, op))

    async def getlk(self, fh: int, owner: int, lock: Any, ctx: Any) -> Any:
        v = self.vfs
        start, end = _lock_range(lock)
        ltype, start, end, pid = await self._call(
            "getlk", _with_pid(request_ids(ctx), lock.l_pid),
            lambda c: v.getlk(c, fh, owner, lock.l_type, start, end))
        if ltype == fcntl.F_UNLCK:
            return pyfuse3.FileLock(fcntl.F_UNLCK, 0, 0, 0)
        return pyfuse3.FileLock(ltype, start, 0 if end >= MAX_OFFSET else end - start + 1, pid)

    async def setlk(self, fh: int, owner: int, lock: Any, sleep: bool, ctx: Any) -> None:
        unlock = lock.l_type == fcntl.F_UNLCK
        if unlock and owner not in self.plock_owners:
            return  # e.g. the unlock after every flush: this owner holds no lock through this mount
        v = self.vfs
        start, end = _lock_range(lock)
        if not unlock:
            self.plock_owners.add(owner)  # before the call: a lock may be granted even if we fail later
        await self._call("setlk", _with_pid(request_ids(ctx), lock.l_pid),
                         lambda c: v.setlk(c, fh, owner, lock.l_type, start, end, sleep))

    async def fallocate(self, fh: int, mode: int, offset: int, length: int, ctx: Any) -> None:
        v = self.vfs
        await self._call("fallocate", request_ids(ctx), lambda c: v.fallocate(c, fh, mode, offset, length))

    async def copy_file_range(self, fh_in: int, off_in: int, fh_out: int, off_out: int, length: int,
                              flags: int, ctx: Any) -> int:
        v = self.vfs
        return await self._call("copy_file_range", request_ids(ctx),
                                lambda c: v.copy_file_range(c, fh_in, off_in, fh_out, off_out, length, flags))


# Kernel readahead of the mount, in KiB. The kernel proposes 128 KiB at INIT and lets a FUSE
# server only lower it, so sequential reads arrive as 128 KiB requests; each costs pyfuse3 and the
# thread hop a few hundred µs. 1 MiB (= the largest request, max_write) makes them 8x fewer. The
# page cache semantics do not change (close-to-open still drops pages at open).
READAHEAD_KB = 1024


def set_readahead(mountpoint: str, kb: int) -> bool:
    """Set read_ahead_kb of the FUSE mount at `mountpoint` (its bdi is "<major>:<minor>" of the
    mount). Needs root; a failure only costs speed, so it is logged at debug and ignored."""
    if not mountpoint:
        return False
    try:
        # Never stat the mount point itself: on the trio thread that request would wait for us.
        head, tail = os.path.split(os.path.abspath(mountpoint))
        real = os.path.join(os.path.realpath(head), tail)
        dev = ""
        with open("/proc/self/mountinfo", "rb") as f:
            for line in f:
                parts = line.split()
                sep = parts.index(b"-") if b"-" in parts else -1
                point = re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m.group(1), 8)]), parts[4]) \
                    if len(parts) > 4 else b""  # mountinfo writes space, tab, \\ and newline as \ooo
                if point.decode(errors="replace") == real and sep > 0 and parts[sep + 1].startswith(b"fuse"):
                    dev = parts[2].decode()  # the last match is the topmost mount
        if not dev:
            return False
        with open(f"/sys/class/bdi/{dev}/read_ahead_kb", "w") as f:
            f.write(f"{kb}\n")
        return True
    except (OSError, ValueError) as e:
        log.debug("set read_ahead_kb of %s: %s", mountpoint, e)
        return False


def _lock_range(lock: Any) -> tuple[int, int]:
    """[start, end] (end inclusive, MAX_OFFSET = to the end of the file) of a pyfuse3.FileLock,
    whose l_len is 0 for "to the end" (libfuse always passes l_whence SEEK_SET, l_len >= 0)."""
    start = max(0, lock.l_start)
    if lock.l_len <= 0:
        return start, MAX_OFFSET
    return start, min(MAX_OFFSET, start + lock.l_len - 1)


def _with_pid(ids: Ids, pid: int) -> Ids:
    uid, gid, req_pid, umask = ids
    return uid, gid, pid or req_pid, umask


# --- observability ----------------------------------------------------------------------------------
# Every handler that JuiceFS logs is wrapped (below, in one place): the whole request is timed into
# the metrics (juicefs_fuse_ops_*) and, while someone reads .accesslog, logged in JuiceFS's format.
# Reads of .accesslog itself are served from the log, not the VFS, and neither logged nor counted.
SLOW_OP = 10.0  # seconds: JuiceFS logs slower requests at INFO
_NO_CALLER = ("release", "releasedir")  # sent by the kernel for nobody in particular (JuiceFS: pid 0)


def _observed(name: str, handler: Callable[..., Any]) -> Callable[..., Any]:
    perf = time.perf_counter

    @functools.wraps(handler)
    async def observed(self: FuseOps, *args: Any, **kwargs: Any) -> Any:
        if name == "read" and self.access_log.is_reader(args[0]):
            return await trio.to_thread.run_sync(self.access_log.read, args[0], args[2], limiter=self.limiter)
        t0 = perf()
        err, res = 0, None
        try:
            res = await handler(self, *args, **kwargs)
            return res
        except pyfuse3.FUSEError as e:
            err = e.errno
            raise
        except BaseException:
            err = errno.EINTR  # cancelled: the kernel interrupted the request
            raise
        finally:
            _observe(self, name, args, res, err, perf() - t0)

    return observed


def _observe(ops: FuseOps, name: str, args: tuple, res: Any, err: int, seconds: float) -> None:
    fhs = ops.fh_inodes
    if not err:
        if name == "open":
            fhs[res.fh] = args[0]
            if args[0] == LOG_INODE:
                ops.access_log.open(res.fh)
        elif name == "create":
            fhs[res[0].fh] = res[1].st_ino
        elif name == "opendir":
            fhs[res] = args[0]
    if not _skipped(ops, name, args, res, err):
        metrics.fuse_op(name, seconds, err)
        if ops.access_log.active or seconds >= SLOW_OP:
            text = describe(name, args, res, err, lambda fh: fhs.get(fh, 0))
            uid, gid, pid = _caller(ops, name, args)
            if seconds >= SLOW_OP and pid:
                log.info("slow operation: %s <%.6f>", text, seconds)
            ops.access_log.log(uid, gid, pid, text, seconds)
    if name in _NO_CALLER:
        fhs.pop(args[0], None)
        if name == "release":
            ops.access_log.close(args[0])


def _skipped(ops: FuseOps, name: str, args: tuple, res: Any, err: int) -> bool:
    """Requests JuiceFS would neither count nor log: lookups and attributes of its internal files,
    what never reaches the VFS (ENOSYS: xattrs disabled), and the unlock the patched pyfuse3 sends
    after every flush for owners that hold no lock (answered at once by setlk above)."""
    if err == errno.ENOSYS:
        return True
    if name == "lookup":
        return res is not None and is_internal(res.st_ino)
    if name == "getattr":
        return is_internal(args[0])
    if name == "setlk":
        return args[2].l_type == fcntl.F_UNLCK and args[1] not in ops.plock_owners
    return False


def _caller(ops: FuseOps, name: str, args: tuple) -> tuple[int, int, int]:
    """uid, gid, pid of a request: its context, or for requests on a handle the opener's."""
    if name in _NO_CALLER or not args:
        return 0, 0, 0
    ctx = args[-1]
    if hasattr(ctx, "pid") and hasattr(ctx, "uid"):
        return ctx.uid, ctx.gid, ctx.pid
    c = ops.handle_ctx.get(args[0])
    return (c.uid, c.gid, c.pid) if c is not None else (0, 0, 0)


def _observe_handlers(cls: type) -> None:
    for name in LOG_FORMATS:
        handler = cls.__dict__.get(name)  # only FuseOps's own: pyfuse3's defaults stay as they are
        if handler is not None:
            setattr(cls, name, _observed(name, handler))


_observe_handlers(FuseOps)
