"""File operations of the VFS (a mixin of VFS): handles, read/write, flush, truncate, fallocate,
copy_file_range and locks. Facts from JuiceFS pkg/vfs/vfs.go and handle.go; locks in docs/dev/vfs.md.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
from typing import TYPE_CHECKING

from ..errors import FsError
from ..meta.base_lock import F_RDLCK, F_UNLCK, F_WRLCK, MAX_OFFSET
from ..meta.base_common import Context
from ..meta.types import (
    CHUNK_SIZE,
    SET_ATTR_MTIME,
    SET_ATTR_MTIME_NOW,
    SET_ATTR_SIZE,
    TYPE_FILE,
    Attr,
    Entry,
)
from .handles import FileState, Handle
from .internal import SERVED_FILES, is_special
from .op import op
from .reader import FileReader
from .writer import FileWriter

if TYPE_CHECKING:
    from .vfs import VFS

log = logging.getLogger(__name__)

MAX_FILE_SIZE = CHUNK_SIZE << 31  # JuiceFS maxFileSize
_BADF = {errno.ENOENT: errno.EBADF, errno.EPERM: errno.EBADF, errno.EINVAL: errno.EBADF}  # as JuiceFS
_FLOCK_TYPES = {fcntl.LOCK_SH: F_RDLCK, fcntl.LOCK_EX: F_WRLCK, fcntl.LOCK_UN: F_UNLCK}


class FileOps:
    # --- handle table ----------------------------------------------------------------------------
    def _add_handle(self: VFS, h: Handle) -> int:
        with self._hlock:
            h.fh = self._next_fh
            self._next_fh += 1
            self._handles[h.fh] = h
        return h.fh

    def _handle(self: VFS, fh: int) -> Handle:
        with self._hlock:
            h = self._handles.get(fh)
        if h is None:
            raise FsError(errno.EBADF)
        return h

    def _file_handle(self: VFS, fh: int) -> Handle:
        h = self._handle(fh)
        if h.is_dir:
            raise FsError(errno.EISDIR)
        return h

    def _open_file(self: VFS, ino: int, attr: Attr, flags: int) -> Handle:
        """A handle on an inode meta has just opened (and counted): close-to-open, the fresh
        attributes replace what this client knew and cached slices are dropped."""
        if self.conf.kernel_writeback_cache:
            # The kernel's page cache decides offsets (O_APPEND included) and reads pages to fill
            # partial writes, also through write-only opens; permissions were checked on `flags`.
            flags &= ~os.O_APPEND
            if flags & os.O_ACCMODE == os.O_WRONLY:
                flags = (flags & ~os.O_ACCMODE) | os.O_RDWR
        h = Handle(0, ino, flags)
        if attr.typ == TYPE_FILE:
            with self._hlock:
                st = self._files.get(ino)
                if st is None:
                    st = self._files[ino] = FileState(ino, attr.length)
                st.refs += 1
            h.st = st
            with st.wlock:
                w = st.writer
                if w is not None and w.has_pending():
                    attr.length = max(attr.length, w.get_length())
                st.set_length(attr.length)
            st.invalidate()
            if h.readable:
                h.reader = FileReader(self.reader, st)
                with st.lock:
                    st.readers.add(h.reader)
        self._add_handle(h)
        return h

    def _drop_file(self: VFS, h: Handle) -> None:
        """Forget a handle's share of its inode state (the last one drops the writer)."""
        st = h.st
        if st is None:
            return
        if h.reader is not None:
            h.reader.close()
            with st.lock:
                st.readers.discard(h.reader)
        with self._hlock:
            st.refs -= 1
            if st.refs == 0:
                if self._files.get(st.ino) is st:
                    del self._files[st.ino]
                if st.writer is not None:
                    self.writer.drop(st.ino)

    def _writer_of(self: VFS, st: FileState) -> FileWriter:
        """The inode's writer, made on the first write (caller holds st.wlock)."""
        if st.writer is None:
            st.writer = self.writer.open(st.ino, st.length)
        return st.writer

    def _flush_inode(self: VFS, ino: int) -> None:
        """Commit an inode's pending writes (if this client has any)."""
        w = self.writer.find(ino)
        if w is not None:
            w.flush()

    # --- open and create -------------------------------------------------------------------------
    @op
    def open(self: VFS, ctx: Context, ino: int, flags: int) -> tuple[int, Attr]:
        if ino in SERVED_FILES:
            if flags & os.O_ACCMODE != os.O_RDONLY:
                raise FsError(errno.EACCES)
            data = self._internal_content(ino)
            attr = self._internal[ino].copy()
            h = Handle(0, ino, flags, data=data)
            return self._add_handle(h), attr
        attr = self.meta.open(ctx, ino, flags)
        try:
            h = self._open_file(ino, attr, flags)
        except BaseException:
            self.meta.close(ctx, ino)
            raise
        if flags & os.O_TRUNC and h.writable and attr.typ == TYPE_FILE:
            try:
                attr = self._truncate(ctx, ino, 0, skip_perm=True)
            except BaseException:
                self._release(ctx, h)
                raise
        return h.fh, attr

    @op
    def create(self: VFS, ctx: Context, parent: int, name: bytes, mode: int, flags: int) -> tuple[int, Entry]:
        if self._reserved(parent, name):
            raise FsError(errno.EEXIST)
        if len(name) > 255:
            raise FsError(errno.ENAMETOOLONG)
        ino, attr = self.meta.create(ctx, parent, name, mode & 0o7777, flags)
        try:
            h = self._open_file(ino, attr, flags)
        except BaseException:
            self.meta.close(ctx, ino)
            raise
        if flags & os.O_TRUNC and attr.length > 0:  # an existing file, opened without O_EXCL
            try:
                attr = self._truncate(ctx, ino, 0, skip_perm=True)
            except BaseException:
                self._release(ctx, h)
                raise
        return h.fh, Entry(name, ino, attr.typ, attr)

    # --- data ------------------------------------------------------------------------------------
    @op
    def read(self: VFS, ctx: Context, fh: int, off: int, size: int) -> bytes:
        h = self._file_handle(fh)
        if h.data is not None:
            return h.data[off:off + size]
        if not h.readable or h.st is None:
            raise FsError(errno.EBADF)
        if off < 0 or size < 0:
            raise FsError(errno.EINVAL)
        if off >= MAX_FILE_SIZE or off + size >= MAX_FILE_SIZE:
            raise FsError(errno.EFBIG)
        st = h.st
        length = st.length
        if off >= length or size == 0:
            return b""
        n = min(size, length - off)
        w = st.writer
        if w is not None and w.overlaps(off, n):
            try:
                w.flush()  # own pending writes become visible through meta (as JuiceFS)
            except FsError as e:
                log.debug("flush inode %d before read: %s", h.ino, e)
        assert h.reader is not None
        try:
            data = h.reader.read(off, n)
        except FsError as e:
            if e.errno == errno.ENOENT:  # deleted by another client under us (as JuiceFS)
                raise FsError(errno.EBADF) from e
            raise
        self.stats.add_read(len(data))
        return data

    @op
    def write(self: VFS, ctx: Context, fh: int, off: int, data: bytes) -> int:
        h = self._file_handle(fh)
        if h.data is not None or is_special(h.ino):
            raise FsError(errno.EBADF)
        if not h.writable or h.st is None:
            raise FsError(errno.EBADF)
        if self.conf.read_only:
            raise FsError(errno.EROFS)
        if off < 0:
            raise FsError(errno.EINVAL)
        st = h.st
        n = len(data)
        with st.wlock:
            w = self._writer_of(st)
            if h.append:
                off = max(st.length, w.get_length())
            if off >= MAX_FILE_SIZE or off + n >= MAX_FILE_SIZE:
                raise FsError(errno.EFBIG)
            if n:
                try:
                    w.write(off, data)
                except FsError as e:
                    raise FsError(_BADF.get(e.errno, e.errno)) from e
                st.grow(off + n)
        self.stats.add_written(n)
        return n

    @op
    def flush(self: VFS, ctx: Context, fh: int, lock_owner: int) -> None:
        h = self._file_handle(fh)
        if h.data is not None:
            return
        try:
            if h.writable and h.st is not None and h.st.writer is not None:
                h.st.writer.flush()
        except FsError as e:
            raise FsError(_BADF.get(e.errno, e.errno)) from e
        finally:
            if h.has_posix:  # close() drops the caller's POSIX locks on this file
                try:
                    self.meta.setlk(ctx, h.ino, lock_owner, False, F_UNLCK, 0, MAX_OFFSET, ctx.pid)
                except FsError as e:
                    log.warning("release POSIX locks of inode %d: %s", h.ino, e)

    @op
    def fsync(self: VFS, ctx: Context, fh: int, datasync: bool) -> None:
        h = self._file_handle(fh)
        if h.data is None and h.writable and h.st is not None and h.st.writer is not None:
            try:
                h.st.writer.flush()
            except FsError as e:
                raise FsError(_BADF.get(e.errno, e.errno)) from e

    @op
    def release(self: VFS, ctx: Context, fh: int) -> None:
        with self._hlock:
            h = self._handles.get(fh)
            if h is None or h.is_dir:
                raise FsError(errno.EBADF)
            del self._handles[fh]
        if h.data is not None:
            return
        self._release(ctx, h)

    def _release(self: VFS, ctx: Context, h: Handle) -> None:
        """Last close of a handle: flush its writes, drop its flock, close the inode in meta
        (the last close of an unlinked file deletes it). Raises the flush error, after cleanup."""
        with self._hlock:
            self._handles.pop(h.fh, None)
        failure: FsError | None = None
        if h.writable and h.st is not None and h.st.writer is not None:
            try:
                h.st.writer.flush()
            except FsError as e:
                failure = FsError(errno.EIO if e.errno not in (errno.ENOSPC, errno.EDQUOT) else e.errno)
        if h.has_flock:
            try:
                self.meta.flock(ctx, h.ino, h.flock_owner, F_UNLCK)
            except FsError as e:
                log.warning("release flock of inode %d: %s", h.ino, e)
        self._drop_file(h)
        try:
            self.meta.close(ctx, h.ino)
        except FsError as e:
            log.warning("close inode %d: %s", h.ino, e)
        if failure is not None:
            raise failure

    # --- fast paths: answers from memory, for the FUSE adapter's event loop -------------------------
    # Each returns None/False, having changed nothing, when the request needs I/O, may block or
    # fails: the adapter then makes the ordinary call in a worker thread. None of them blocks (a
    # contended lock means "not now").
    def read_ready(self: VFS, fh: int, off: int, size: int) -> bytes | None:
        """A read that prefetched data already holds entirely."""
        h = self._handles.get(fh)
        if h is None or h.is_dir or h.data is not None or h.st is None or h.reader is None or off < 0:
            return None
        st = h.st
        if st.writer is not None or off >= st.length:  # own pending writes: flush first (thread)
            return None
        data = h.reader.read_ready(off, min(size, st.length - off))
        if data is not None:
            self.stats.add_read(len(data))
        return data

    def write_ready(self: VFS, fh: int, off: int, data: bytes) -> int | None:
        """A write that only fills buffers (FileWriter.try_write); FsError as write() raises it."""
        h = self._handles.get(fh)
        n = len(data)
        if h is None or h.is_dir or h.data is not None or h.st is None or not h.writable or h.append:
            return None
        if self.conf.read_only or off < 0 or n == 0 or off + n >= MAX_FILE_SIZE or is_special(h.ino):
            return None
        st = h.st
        if not st.wlock.acquire(blocking=False):
            return None
        try:
            w = self._writer_of(st)
            try:
                if not w.try_write(off, data):
                    return None
            except FsError as e:
                raise FsError(_BADF.get(e.errno, e.errno)) from e
            st.grow(off + n)
        finally:
            st.wlock.release()
        self.stats.add_written(n)
        return n

    def flush_ready(self: VFS, fh: int) -> bool:
        """A flush with nothing to do: no pending writes, no error, no POSIX lock to drop."""
        h = self._handles.get(fh)
        if h is None or h.is_dir or h.has_posix:
            return False
        w = h.st.writer if h.st is not None else None
        return h.data is not None or not h.writable or w is None or w.idle()

    def release_ready(self: VFS, fh: int) -> bool:
        """The release of a handle with nothing to flush, no flock and a local meta close."""
        if not self._hlock.acquire(blocking=False):
            return False
        try:
            h = self._handles.get(fh)
            if h is None or h.is_dir or h.has_flock:
                return False
            if h.data is None:
                w = h.st.writer if h.st is not None else None
                if h.writable and w is not None and not w.idle():
                    return False
                if not self.meta.close_local(h.ino):
                    return False
            del self._handles[fh]
        finally:
            self._hlock.release()
        if h.data is None:
            self._drop_file(h)
        return True

    # --- size changes ------------------------------------------------------------------------------
    @op
    def setattr(self: VFS, ctx: Context, ino: int, set_mask: int, attr: Attr, fh: int | None = None) -> Attr:
        if is_special(ino):
            raise FsError(errno.EPERM)
        out: Attr | None = None
        if set_mask & SET_ATTR_SIZE:
            skip = False
            if fh:
                with self._hlock:
                    h = self._handles.get(fh)
                skip = h is not None and h.writable  # ftruncate on a file opened for writing
            out = self._truncate(ctx, ino, attr.length, skip_perm=skip)
        rest = set_mask & ~SET_ATTR_SIZE
        if rest:
            out = self.meta.setattr(ctx, ino, rest, attr)
            if rest & (SET_ATTR_MTIME | SET_ATTR_MTIME_NOW):
                w = self.writer.find(ino)
                if w is not None:  # pending commits must not move mtime back
                    w.update_mtime(out.mtime + out.mtimensec / 1e9)
        if out is None:
            out = self.meta.getattr(ino)
        self._update_length(ino, out)
        return out

    def _truncate(self: VFS, ctx: Context, ino: int, length: int, skip_perm: bool = False) -> Attr:
        """Flush the inode's pending writes, then truncate in meta (JuiceFS vfs.Truncate)."""
        if length < 0:
            raise FsError(errno.EINVAL)
        if length >= MAX_FILE_SIZE:
            raise FsError(errno.EFBIG)
        with self._hlock:
            st = self._files.get(ino)
        if st is None:
            self._flush_inode(ino)
            return self.meta.truncate(ctx, ino, length, skip_perm_check=skip_perm)
        with st.wlock:
            if st.writer is not None:
                try:
                    st.writer.flush()
                except FsError as e:
                    log.warning("flush inode %d before truncate: %s", ino, e)
            attr = self.meta.truncate(ctx, ino, length, skip_perm_check=skip_perm)
            if st.writer is not None:
                st.writer.truncate(attr.length)
            st.set_length(attr.length)
        st.invalidate()
        return attr

    @op
    def fallocate(self: VFS, ctx: Context, fh: int, mode: int, off: int, length: int) -> None:
        if off < 0 or length <= 0:
            raise FsError(errno.EINVAL)
        h = self._file_handle(fh)
        if h.data is not None or is_special(h.ino):
            raise FsError(errno.EPERM)
        if not h.writable or h.st is None:
            raise FsError(errno.EBADF)
        if off >= MAX_FILE_SIZE or off + length >= MAX_FILE_SIZE:
            raise FsError(errno.EFBIG)
        st = h.st
        with st.wlock:
            if st.writer is not None:
                st.writer.flush()  # a hole punched now must not be covered by older pending data
            new_len = self.meta.fallocate(ctx, h.ino, mode, off, length)
            if st.writer is not None:
                st.writer.truncate(new_len)
            st.set_length(new_len)
        st.invalidate()

    @op
    def copy_file_range(self: VFS, ctx: Context, fh_in: int, off_in: int, fh_out: int, off_out: int, size: int,
                        flags: int) -> int:
        hi, ho = self._file_handle(fh_in), self._file_handle(fh_out)
        if hi.data is not None or is_special(hi.ino):
            raise FsError(errno.ENOTSUP)
        if ho.data is not None or is_special(ho.ino):
            raise FsError(errno.EPERM)
        if not hi.readable or hi.st is None:
            raise FsError(errno.EBADF)
        if not ho.writable or ho.st is None:
            raise FsError(errno.EBADF)
        if off_in < 0 or off_out < 0 or size < 0:
            raise FsError(errno.EINVAL)
        if max(off_in, off_out) + size >= MAX_FILE_SIZE:
            raise FsError(errno.EFBIG)
        if flags:
            raise FsError(errno.EINVAL)
        if hi.ino == ho.ino and off_in < off_out + size and off_out < off_in + size:
            raise FsError(errno.EINVAL)  # overlapping ranges of one file
        if size == 0:
            return 0
        st = ho.st
        with st.wlock:
            if hi.st.writer is not None and hi.st is not st:
                hi.st.writer.flush()
            if st.writer is not None:
                st.writer.flush()
            copied, new_len = self.meta.copy_file_range(ctx, hi.ino, off_in, ho.ino, off_out, size, flags)
            if st.writer is not None:
                st.writer.truncate(new_len)
            st.set_length(new_len)
        st.invalidate()
        return copied

    # --- locks -------------------------------------------------------------------------------------
    @op
    def flock(self: VFS, ctx: Context, fh: int, owner: int, op_: int) -> None:
        h = self._file_handle(fh)
        ltype = _FLOCK_TYPES.get(op_ & ~fcntl.LOCK_NB)
        if ltype is None:
            raise FsError(errno.EINVAL)
        self.meta.flock(ctx, h.ino, owner, ltype, block=not op_ & fcntl.LOCK_NB)
        with h.lock:
            if ltype == F_UNLCK:
                h.has_flock = False
            else:
                h.has_flock, h.flock_owner = True, owner

    @op
    def getlk(self: VFS, ctx: Context, fh: int, owner: int, ltype: int, start: int,
              end: int) -> tuple[int, int, int, int]:
        h = self._file_handle(fh)
        return self.meta.getlk(ctx, h.ino, owner, ltype, start, end, ctx.pid)

    @op
    def setlk(self: VFS, ctx: Context, fh: int, owner: int, ltype: int, start: int, end: int, block: bool) -> None:
        h = self._file_handle(fh)
        self.meta.setlk(ctx, h.ino, owner, block, ltype, start, end, ctx.pid)
        if ltype != F_UNLCK:
            with h.lock:
                h.has_posix = True

