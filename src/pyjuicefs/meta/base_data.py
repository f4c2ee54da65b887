"""File data in the Meta API: open files, chunks and slices, truncate/fallocate/copy_file_range,
and the deferred deletion of data (deleted files, sustained inodes, the trash).

A chunk is a list of slice records (later records win); holes are records with slice id 0.
Meta never touches objects: freed slices go to `on_delete_slice(id, size)`.
"""

from __future__ import annotations

import calendar
import errno
import logging
import os
import time
from typing import TYPE_CHECKING

from .base_common import (
    FALLOC_COLLAPSE_RANGE,
    FALLOC_INSERT_RANGE,
    FALLOC_KEEP_SIZE,
    FALLOC_PUNCH_HOLE,
    FALLOC_ZERO_RANGE,
    MODE_MASK_R,
    MODE_MASK_W,
    MODE_MASK_X,
    ROOT_CTX,
    Context,
    err,
    now_ts,
    stamp,
)
from ..layout import build_slices
from .codec import align4k
from .engine import Txn
from .types import CHUNK_SIZE, FLAG_APPEND, FLAG_IMMUTABLE, TRASH_INODE, TYPE_FIFO, TYPE_FILE, Attr, Slice

if TYPE_CHECKING:
    from .base import Meta

logger = logging.getLogger(__name__)


class DataOps:
    # --- open files ----------------------------------------------------------------------------
    def _opened(self: Meta, ino: int) -> None:
        with self._lock:
            self._open[ino] = self._open.get(ino, 0) + 1

    def _is_open(self: Meta, ino: int) -> bool:
        with self._lock:
            return self._open.get(ino, 0) > 0

    def open(self: Meta, ctx: Context, ino: int, flags: int) -> Attr:
        """Check that ctx may open `ino` with open(2) flags and count it as open."""
        acc = flags & os.O_ACCMODE
        writing = acc in (os.O_WRONLY, os.O_RDWR)
        if self.conf.read_only and (writing or flags & (os.O_TRUNC | os.O_APPEND)):
            raise err(errno.EROFS)
        attr = self.getattr(ino)
        mask = {os.O_RDONLY: MODE_MASK_R, os.O_WRONLY: MODE_MASK_W, os.O_RDWR: MODE_MASK_R | MODE_MASK_W}.get(acc, 0)
        if acc == os.O_RDONLY and flags & 0x20:  # O_FMODE_EXEC
            mask = MODE_MASK_X
        self.access(ctx, ino, mask, attr)
        if (attr.flags & FLAG_IMMUTABLE or attr.parent > TRASH_INODE) and writing:
            raise err(errno.EPERM)
        if attr.flags & FLAG_APPEND:
            if (writing and not flags & os.O_APPEND) or flags & os.O_TRUNC:
                raise err(errno.EPERM)
        self._opened(ino)
        self._touch_atime(ino)
        return attr

    def close(self: Meta, ctx: Context, ino: int) -> None:
        """Release one open of `ino`; the last close of an unlinked file deletes it."""
        with self._lock:
            n = self._open.get(ino, 0) - 1
            if n > 0:
                self._open[ino] = n
                return
            self._open.pop(ino, None)
            removed = ino in self._removed
            self._removed.discard(ino)
        if removed:
            self._delete_sustained(self.sid, ino)

    def slice_id_ready(self: Meta) -> bool:
        """new_slice() would answer from the local batch, without a round trip."""
        nxt, mx = self._free_slices
        return nxt < mx and not self.conf.read_only

    def close_local(self: Meta, ino: int) -> bool:
        """close() when it needs no I/O (not the last close of a file unlinked while open);
        False, with nothing done, otherwise: then call close()."""
        with self._lock:
            n = self._open.get(ino, 0) - 1
            if n <= 0 and ino in self._removed:
                return False
            if n > 0:
                self._open[ino] = n
            else:
                self._open.pop(ino, None)
            return True

    # --- reading and writing -----------------------------------------------------------------------
    def read(self: Meta, ino: int, indx: int) -> list[Slice]:
        """The visible slices of chunk `indx` (positions within the chunk; holes have id 0)."""
        def fn(tx: Txn) -> list[Slice]:
            records = tx.get_chunk(ino, indx)
            if not records:
                attr = tx.get_attr(ino)
                if attr is None:
                    raise err(errno.ENOENT)
                if attr.typ != TYPE_FILE:
                    raise err(errno.EPERM)
            return records

        records = self._txn(fn, readonly=True)
        self._touch_atime(ino)
        return build_slices(records)

    def write(self: Meta, ino: int, indx: int, off: int, s: Slice, mtime: float | None = None) -> None:
        """Record that [s.off, s.off+s.len) of slice s.id is at position `off` of chunk `indx`."""
        if self.conf.read_only:
            raise err(errno.EROFS)
        now = now_ts()
        mt = now if mtime is None else (int(mtime), int(round((mtime % 1) * 1e9)) % 1_000_000_000)
        record = Slice(off, s.id, s.size, s.off, s.len)
        self._load_usage()

        def fn(tx: Txn) -> tuple[Attr, int, int]:
            attr, records = tx.get_many(("attr", ino), ("chunk", ino, indx))  # one round trip
            if attr is None:
                raise err(errno.ENOENT)
            if attr.typ != TYPE_FILE:
                raise err(errno.EPERM)
            dlen = dspace = 0
            new_len = indx * CHUNK_SIZE + off + s.len
            if new_len > attr.length:
                dlen, dspace = new_len - attr.length, align4k(new_len) - align4k(attr.length)
                attr.length = new_len
            if dspace > 0:
                self._check_quota(dspace, 0)
            attr.mtime, attr.mtimensec = mt
            stamp(attr, now, ctime=True)
            if record in records:
                logger.warning("write same slice %d for inode %d chunk %d", s.id, ino, indx)
                return attr, 0, 0
            tx.append_slice(ino, indx, record)
            tx.set_attr(ino, attr)
            if dspace:
                tx.incr_counter("usedSpace", dspace)
            return attr, dlen, dspace

        attr, dlen, dspace = self._txn(fn)
        self._update_parent_stats(ino, attr.parent, dlen, dspace)

    def truncate(self: Meta, ctx: Context, ino: int, length: int, flags: int = 0,
                 skip_perm_check: bool = False) -> Attr:
        """Set the length; the changed range reads as zeros (hole records), as JuiceFS."""
        if self.conf.read_only:
            raise err(errno.EROFS)
        self._load_usage()
        now = now_ts()

        def fn(tx: Txn) -> tuple[Attr, int, int]:
            t = tx.get_attr(ino)
            if t is None:
                raise err(errno.ENOENT)
            if t.typ != TYPE_FILE or t.flags & (FLAG_IMMUTABLE | FLAG_APPEND) or (flags == 0 and t.parent > TRASH_INODE):
                raise err(errno.EPERM)
            if not skip_perm_check:
                self._access(ctx, t, MODE_MASK_W)
            if length == t.length:
                return t, 0, 0
            dlen, dspace = length - t.length, align4k(length) - align4k(t.length)
            if dspace > 0:
                self._check_quota(dspace, 0)
            left, right = sorted((t.length, length))
            first, last = left // CHUNK_SIZE, right // CHUNK_SIZE
            if last - first > 1:  # existing chunks fully inside the range become holes
                for indx in tx.chunk_indexes(ino):
                    if first < indx < last:
                        tx.append_slice(ino, indx, Slice(0, 0, 0, 0, CHUNK_SIZE))
            n = right - left
            if right > (first + 1) * CHUNK_SIZE:
                n = CHUNK_SIZE - left % CHUNK_SIZE
            tx.append_slice(ino, first, Slice(left % CHUNK_SIZE, 0, 0, 0, n))
            if right > (first + 1) * CHUNK_SIZE and right % CHUNK_SIZE > 0:
                tx.append_slice(ino, last, Slice(0, 0, 0, 0, right % CHUNK_SIZE))
            t.length = length
            stamp(t, now, mtime=True, ctime=True)
            tx.set_attr(ino, t)
            if dspace:
                tx.incr_counter("usedSpace", dspace)
            return t, dlen, dspace

        attr, dlen, dspace = self._txn(fn)
        self._update_parent_stats(ino, attr.parent, dlen, dspace)
        return attr

    def fallocate(self: Meta, ctx: Context, ino: int, mode: int, off: int, size: int) -> int:
        """fallocate(2): default and KEEP_SIZE extend; PUNCH_HOLE/ZERO_RANGE write hole records.
        Returns the new length."""
        if mode & FALLOC_COLLAPSE_RANGE and mode != FALLOC_COLLAPSE_RANGE:
            raise err(errno.EINVAL)
        if mode & FALLOC_INSERT_RANGE and mode != FALLOC_INSERT_RANGE:
            raise err(errno.EINVAL)
        if mode in (FALLOC_INSERT_RANGE, FALLOC_COLLAPSE_RANGE):
            raise err(errno.ENOTSUP)
        if mode & FALLOC_PUNCH_HOLE and not mode & FALLOC_KEEP_SIZE:
            raise err(errno.EINVAL)
        if size == 0:
            raise err(errno.EINVAL)
        if self.conf.read_only:
            raise err(errno.EROFS)
        self._load_usage()
        now = now_ts()

        def fn(tx: Txn) -> tuple[Attr, int, int]:
            t = tx.get_attr(ino)
            if t is None:
                raise err(errno.ENOENT)
            if t.typ == TYPE_FIFO:
                raise err(errno.EPIPE)
            if t.typ != TYPE_FILE or t.flags & FLAG_IMMUTABLE:
                raise err(errno.EPERM)
            self._access(ctx, t, MODE_MASK_W)
            if t.flags & FLAG_APPEND and mode & ~FALLOC_KEEP_SIZE:
                raise err(errno.EPERM)
            length = t.length
            if off + size > t.length and not mode & FALLOC_KEEP_SIZE:
                length = off + size
            old = t.length
            dlen, dspace = length - old, align4k(length) - align4k(old)
            if dspace > 0:
                self._check_quota(dspace, 0)
            t.length = length
            stamp(t, now, mtime=True, ctime=True)
            tx.set_attr(ino, t)
            if mode & (FALLOC_ZERO_RANGE | FALLOC_PUNCH_HOLE) and off < old:
                o, n = off, min(size, old - off)
                while n > 0:
                    indx, coff = divmod(o, CHUNK_SIZE)
                    ln = min(n, CHUNK_SIZE - coff)
                    tx.append_slice(ino, indx, Slice(coff, 0, 0, 0, ln))
                    o, n = o + ln, n - ln
            if dspace:
                tx.incr_counter("usedSpace", dspace)
            return t, dlen, dspace

        attr, dlen, dspace = self._txn(fn)
        self._update_parent_stats(ino, attr.parent, dlen, dspace)
        return attr.length

    def copy_file_range(self: Meta, ctx: Context, fin: int, off_in: int, fout: int, off_out: int, size: int,
                        flags: int = 0) -> tuple[int, int]:
        """Share the slices of fin's range into fout (no data copied); returns (copied, new length)."""
        if self.conf.read_only:
            raise err(errno.EROFS)
        if flags:
            raise err(errno.EINVAL)
        self._load_usage()
        now = now_ts()

        def fn(tx: Txn) -> tuple[int, Attr, int, int]:
            sattr, attr = tx.get_attrs([fin, fout])
            if sattr is None or attr is None:
                raise err(errno.ENOENT)
            if sattr.typ != TYPE_FILE:
                raise err(errno.EINVAL)
            if off_in >= sattr.length:
                return 0, attr, 0, 0
            n = min(size, sattr.length - off_in)
            if attr.typ != TYPE_FILE:
                raise err(errno.EINVAL)
            if attr.flags & (FLAG_IMMUTABLE | FLAG_APPEND):
                raise err(errno.EPERM)
            dlen = dspace = 0
            if off_out + n > attr.length:
                dlen, dspace = off_out + n - attr.length, align4k(off_out + n) - align4k(attr.length)
                attr.length = off_out + n
            if dspace > 0:
                self._check_quota(dspace, 0)
            stamp(attr, now, mtime=True, ctime=True)
            end = off_in + n
            for indx in range(off_in // CHUNK_SIZE, end // CHUNK_SIZE + 1):
                base = indx * CHUNK_SIZE
                if base >= end:
                    break
                # a zero slice under the records makes holes explicit
                layout = build_slices([Slice(0, 0, 0, 0, CHUNK_SIZE)] + tx.get_chunk(fin, indx))
                for s in layout:
                    pos, ln, soff = base + s.pos, s.len, s.off
                    if pos + ln <= off_in or pos >= end:
                        continue
                    if pos < off_in:
                        d = off_in - pos
                        pos, ln, soff = pos + d, ln - d, soff + d
                    if pos + ln > end:
                        ln = end - pos
                    dpos = pos - off_in + off_out
                    dindx, dcoff = divmod(dpos, CHUNK_SIZE)
                    if dcoff + ln > CHUNK_SIZE:
                        head = CHUNK_SIZE - dcoff
                        pieces = [(dindx, dcoff, soff, head), (dindx + 1, 0, soff + head, ln - head)]
                    else:
                        pieces = [(dindx, dcoff, soff, ln)]
                    for pindx, pcoff, poff, plen in pieces:
                        tx.append_slice(fout, pindx, Slice(pcoff, s.id, s.size, poff, plen))
                        if s.id:  # holes have no object to reference
                            tx.incr_slice_ref(s.id, s.size, 1)
            tx.set_attr(fout, attr)
            if dspace:
                tx.incr_counter("usedSpace", dspace)
            return n, attr, dlen, dspace

        copied, attr, dlen, dspace = self._txn(fn)
        self._update_parent_stats(fout, attr.parent, dlen, dspace)
        return copied, attr.length

    # --- deletion ------------------------------------------------------------------------------
    def _file_deleted(self: Meta, ino: int, length: int, opened: bool) -> None:
        if opened:
            with self._lock:
                self._removed.add(ino)
        else:
            self._delete_file_data(ino, length)

    def _delete_file_data(self: Meta, ino: int, length: int) -> None:
        """Drop the chunks of a deleted file, then its delfile record."""
        by_length = getattr(self.engine, "file_chunk_indexes", None)  # Redis: no index by inode
        if by_length is not None:
            indexes = by_length(ino, length)
        else:
            indexes = self._txn(lambda tx: tx.chunk_indexes(ino), readonly=True)
        for indx in indexes:
            for id_, size in self.engine.delete_chunk(ino, indx):
                self._delete_slice(id_, size)
        exact = getattr(self.engine, "delete_delfile_exact", None)
        if exact is not None:
            exact(ino, length)
        else:
            self.engine.delete_delfile(ino)

    def _delete_slice(self: Meta, id_: int, size: int) -> None:
        if id_ == 0 or self.conf.max_deletes == 0 or self.on_delete_slice is None:
            return
        try:
            self.on_delete_slice(id_, size)
        except Exception as e:  # noqa: BLE001 - a leaked object is found by gc later
            logger.warning("delete data of slice %d (%d bytes): %s", id_, size, e)

    def _delete_sustained(self: Meta, sid: int, ino: int) -> None:
        """Delete an unlinked inode kept by session `sid` because it was open."""
        now = now_ts()

        def fn(tx: Txn) -> Attr | None:
            attr = tx.get_attr(ino)
            if attr is None:
                tx.delete_sustained(sid, ino)
                return None
            tx.add_delfile(ino, attr.length, now[0])
            tx.delete_attr(ino)
            tx.delete_sustained(sid, ino)
            tx.incr_counter("usedSpace", -align4k(attr.length))
            tx.incr_counter("totalInodes", -1)
            return attr

        attr = self._txn(fn)
        if attr is not None:
            self._delete_file_data(ino, attr.length)

    def process_delfiles(self: Meta, before: float | None = None) -> int:
        """Delete the data of files deleted before `before` (all when None); returns how many."""
        n = 0
        for df in self.engine.list_delfiles():
            if before is None or df.expire < before:
                self._delete_file_data(df.inode, df.length)
                n += 1
        return n

    def cleanup_trash(self: Meta, before: float) -> int:
        """Remove the trash directories of hours before `before` (unix seconds) and all they
        hold; returns the number of entries removed."""
        entries = self._txn(lambda tx: tx.list_entries(TRASH_INODE), readonly=True)
        count = 0
        for name, _typ, ino in sorted(entries, key=lambda e: e[2]):
            try:
                ts = calendar.timegm(time.strptime(name.decode(), "%Y-%m-%d-%H"))
            except ValueError:
                logger.warning("bad entry as a sub-trash: %r", name)
                continue
            if ts >= before:
                continue
            clean = True
            for child, _t, _i in self._txn(lambda tx, ino=ino: tx.list_entries(ino), readonly=True):
                try:
                    count += self.remove(ROOT_CTX, ino, child, skip_trash=True)
                except OSError as e:
                    logger.warning("delete from trash %r/%r: %s", name, child, e)
                    clean = False
            if clean:
                try:
                    self._rmdir(ROOT_CTX, TRASH_INODE, name, skip_trash=True)
                except OSError as e:
                    logger.warning("rmdir sub-trash %r: %s", name, e)
        return count

    def empty_trash(self: Meta) -> int:
        """Remove everything in the trash now."""
        return self.cleanup_trash(time.time() + 3600)
