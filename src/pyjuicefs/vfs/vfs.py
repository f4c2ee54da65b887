"""The VFS: POSIX file semantics over the Meta API and the chunk store (JuiceFS pkg/vfs/vfs.go).

Synchronous and thread-safe: the FUSE adapter calls it from a thread pool. Every public method
raises only FsError (see `_op`). Namespace operations are thin checks over meta; the data path
(handles, writer, reader) is in fileops.py, writer.py and reader.py. Threads and locks are
described in docs/dev/vfs.md.
"""

from __future__ import annotations

import errno
import logging
import stat
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from .. import JUICEFS_COMPAT_VERSION, __version__
from ..chunk import ChunkStore
from ..errors import FsError
from ..meta.base_common import Context, StatFS
from ..meta.types import (
    MAX_NAME,
    MAX_SYMLINK,
    ROOT_INODE,
    TRASH_INODE,
    TYPE_DIRECTORY,
    TYPE_FILE,
    Attr,
    Entry,
    type_from_stat,
)
from .config import VFSConfig
from .fileops import FileOps
from .handles import FileState, Handle
from .internal import (
    CONFIG_INODE,
    LOG_INODE,
    NODES,
    STATS_INODE,
    config_json,
    is_reserved_name,
    is_special,
    node_attrs,
)
from .op import op as _op
from .reader import DataReader
from .stats import Stats
from .writer import DataWriter

if TYPE_CHECKING:
    from ..meta.base import Meta

log = logging.getLogger(__name__)

XATTR_MAX_NAME = 255
XATTR_MAX_SIZE = 65536
ACL_XATTRS = (b"system.posix_acl_access", b"system.posix_acl_default")


def _check_name(name: bytes) -> None:
    if len(name) > MAX_NAME:
        raise FsError(errno.ENAMETOOLONG)


class VFS(FileOps):
    """One mounted volume. Build it with open_volume(); close() when done."""

    def __init__(self, meta: "Meta", store: ChunkStore, conf: VFSConfig | None = None, *,
                 stats: Stats | None = None, background: bool = True) -> None:
        self.meta = meta
        self.store = store
        self.conf = conf or VFSConfig()
        self.stats = stats or Stats()
        self.fmt = meta.get_format()
        if meta.on_delete_slice is None:
            meta.on_delete_slice = store.remove  # deleted files free their objects
        self._hlock = threading.Lock()  # guards _handles, _files, _next_fh, FileState.refs
        self._handles: dict[int, Handle] = {}
        self._files: dict[int, FileState] = {}
        self._next_fh = 1
        self.reader = DataReader(meta, store, self.conf)
        self.writer = DataWriter(meta, store, self.conf, on_commit=self._on_commit)
        self._internal = node_attrs()
        self._config = config_json(self._config_dict())
        self._internal[CONFIG_INODE].length = len(self._config)
        self._closers: list[Callable[[], None]] = []  # run at close (open_volume adds storage/engine)
        self._closed = False
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        if background:
            from .setup import background_jobs  # late: setup imports this module

            self._spawn("jfs-flusher", self._flusher)
            self._spawn("jfs-background", lambda: background_jobs(self, self._stop))

    # --- lifecycle ------------------------------------------------------------------------------
    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def _flusher(self) -> None:
        """Freeze old and idle slices, and big ones while over the buffer budget (every 100 ms)."""
        while not self._stop.wait(0.1):
            try:
                self.writer.flush_stale()
            except Exception:  # noqa: BLE001 - keep the flusher alive
                log.exception("background flush")

    def close(self) -> None:
        """Flush everything, close the session, stop the threads. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        for t in self._threads:
            t.join()
        self.writer.flush_all()
        with self._hlock:
            handles = list(self._handles.values())
            self._handles.clear()
            self._files.clear()
        for h in handles:
            if h.reader is not None:
                h.reader.close()
        self.writer.close()
        self.reader.close()
        try:
            self.meta.close_session()
        except Exception as e:  # noqa: BLE001 - the session expires by itself
            log.warning("close session: %s", e)
        self.store.close()
        for fn in self._closers:
            try:
                fn()
            except Exception as e:  # noqa: BLE001
                log.warning("close: %s", e)

    def __enter__(self) -> "VFS":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _config_dict(self) -> dict[str, object]:
        """What `.config` shows (JuiceFS's Config field names where they exist; no secrets)."""
        m = self.meta.conf
        c = self.conf
        return {
            "Meta": {"Retries": m.retries, "Heartbeat": m.heartbeat, "ReadOnly": m.read_only,
                     "Subdir": m.subdir, "AtimeMode": m.atime_mode, "MaxDeletes": m.max_deletes,
                     "MountPoint": m.mount_point, "SkipDirMtime": m.skip_dir_mtime},
            "Format": self.fmt.redacted().to_dict(),
            "Chunk": {"BlockSize": self.store.block_size, "Compress": self.fmt.Compression,
                      "MaxUpload": c.max_uploads, "BufferSize": c.buffer_size,
                      "Readahead": self.reader.max_readahead, "Prefetch": c.prefetch,
                      "GetTimeout": c.get_timeout, "PutTimeout": c.put_timeout, "HashPrefix": self.fmt.HashPrefix},
            "Version": f"{JUICEFS_COMPAT_VERSION}+pyjuicefs-{__version__}",
            "AttrTimeout": c.attr_timeout,
            "DirEntryTimeout": c.dir_entry_timeout,
            "EntryTimeout": c.entry_timeout,
            "HideInternal": c.hide_internal,
            "ReadOnly": c.read_only,
            "EnableXattr": c.enable_xattr,
        }

    # --- helpers ---------------------------------------------------------------------------------
    def _internal_attr(self, ino: int) -> Attr | None:
        if ino == TRASH_INODE or ino not in self._internal:
            return None
        return self._internal[ino].copy()

    def _reserved(self, parent: int, name: bytes) -> bool:
        """A name of the root that belongs to an internal node (JuiceFS IsSpecialName)."""
        if name == b".trash" and self.meta.root != ROOT_INODE:
            return False
        return is_reserved_name(parent, name)

    def _update_length(self, ino: int, attr: Attr) -> None:
        """A file's length as this client sees it: pending writes count (JuiceFS UpdateLength)."""
        if attr.typ != TYPE_FILE:
            return
        with self._hlock:
            st = self._files.get(ino)
        if st is None:
            return
        w = st.writer
        if w is not None and w.has_pending():
            attr.length = max(attr.length, w.get_length())
            st.grow(attr.length)
        elif st.grow(attr.length):
            st.invalidate()  # another client appended: cached slices end too early

    def _on_commit(self, ino: int, off: int, length: int) -> None:
        with self._hlock:
            st = self._files.get(ino)
        if st is not None:
            st.invalidate()

    def _stats_text(self) -> bytes:
        with self._hlock:
            handles = len(self._handles)
        return self.stats.prometheus({
            "fuse_open_handlers": handles,
            "used_buffer_size_bytes": self.writer.buffered,
            "used_read_buffer_size_bytes": self.reader.used,
        })

    # --- namespace -------------------------------------------------------------------------------
    @_op
    def statfs(self, ctx: Context, ino: int) -> StatFS:
        return self.meta.statfs(ctx, ino)

    @_op
    def lookup(self, ctx: Context, parent: int, name: bytes) -> Entry:
        if parent == ROOT_INODE and name in NODES and name != b".trash":
            ino = NODES[name][0]
            return Entry(name, ino, TYPE_FILE, self._internal[ino].copy())
        _check_name(name)
        ino, attr = self.meta.lookup(ctx, parent, name)
        self._update_length(ino, attr)
        return Entry(name, ino, attr.typ, attr)

    @_op
    def getattr(self, ctx: Context, ino: int, fh: int | None = None) -> Attr:
        a = self._internal_attr(ino)
        if a is not None:
            return a
        attr = self.meta.getattr(ino)
        self._update_length(ino, attr)
        return attr

    @_op
    def mknod(self, ctx: Context, parent: int, name: bytes, mode: int, rdev: int) -> Entry:
        if self._reserved(parent, name):
            raise FsError(errno.EEXIST)
        _check_name(name)
        try:
            typ = type_from_stat(mode) if stat.S_IFMT(mode) else TYPE_FILE
        except KeyError:
            raise FsError(errno.EPERM) from None
        ino, attr = self.meta.mknod(ctx, parent, name, typ, mode & 0o7777, rdev)
        return Entry(name, ino, attr.typ, attr)

    @_op
    def mkdir(self, ctx: Context, parent: int, name: bytes, mode: int) -> Entry:
        if self._reserved(parent, name):
            raise FsError(errno.EEXIST)
        _check_name(name)
        ino, attr = self.meta.mkdir(ctx, parent, name, mode & 0o7777)
        return Entry(name, ino, attr.typ, attr)

    @_op
    def unlink(self, ctx: Context, parent: int, name: bytes) -> None:
        if self._reserved(parent, name):
            raise FsError(errno.EPERM)
        _check_name(name)
        self.meta.unlink(ctx, parent, name)

    @_op
    def rmdir(self, ctx: Context, parent: int, name: bytes) -> None:
        _check_name(name)
        self.meta.rmdir(ctx, parent, name)

    @_op
    def symlink(self, ctx: Context, parent: int, name: bytes, target: bytes) -> Entry:
        if self._reserved(parent, name):
            raise FsError(errno.EEXIST)
        if len(name) > MAX_NAME or len(target) >= MAX_SYMLINK:
            raise FsError(errno.ENAMETOOLONG)
        ino, attr = self.meta.symlink(ctx, parent, name, target)
        return Entry(name, ino, attr.typ, attr)

    @_op
    def readlink(self, ctx: Context, ino: int) -> bytes:
        return self.meta.readlink(ctx, ino)

    @_op
    def rename(self, ctx: Context, parent: int, name: bytes, new_parent: int, new_name: bytes, flags: int) -> None:
        if self._reserved(parent, name) or self._reserved(new_parent, new_name):
            raise FsError(errno.EPERM)
        _check_name(name)
        _check_name(new_name)
        self.meta.rename(ctx, parent, name, new_parent, new_name, flags)

    @_op
    def link(self, ctx: Context, ino: int, new_parent: int, new_name: bytes) -> Entry:
        if is_special(ino) or self._reserved(new_parent, new_name):
            raise FsError(errno.EPERM)
        _check_name(new_name)
        attr = self.meta.link(ctx, ino, new_parent, new_name)
        self._update_length(ino, attr)
        return Entry(new_name, ino, attr.typ, attr)

    # --- directories -----------------------------------------------------------------------------
    @_op
    def opendir(self, ctx: Context, ino: int) -> int:
        attr = self.meta.getattr(ino)
        if attr.typ != TYPE_DIRECTORY:
            raise FsError(errno.ENOTDIR)
        return self._add_handle(Handle(0, ino, is_dir=True))

    @_op
    def readdir(self, ctx: Context, fh: int, off: int, plus: bool) -> list[tuple[Entry, int]]:
        h = self._handle(fh)
        if not h.is_dir:
            raise FsError(errno.ENOTDIR)
        if off < 0:
            raise FsError(errno.EINVAL)
        with h.lock:
            if h.entries is None or off == 0:
                h.entries = self._list_dir(ctx, h.ino, plus)
            entries = h.entries[off:]
            if plus:  # a snapshot taken without attributes: fill in what is returned now
                for e in entries:
                    if e.attr is None:
                        try:
                            e.attr = self.meta.getattr(e.inode)
                        except FsError:
                            e.attr = Attr(typ=e.typ)
                        self._update_length(e.inode, e.attr)
        return [(e, i + 1) for i, e in enumerate(entries, start=off)]

    def _list_dir(self, ctx: Context, ino: int, plus: bool) -> list[Entry]:
        """A snapshot of a directory: '.', '..', the entries, and in the root the internal nodes."""
        try:
            entries = self.meta.readdir(ctx, ino, plus)
        except FsError as e:
            if not plus or e.errno != errno.EACCES:
                raise
            entries = self.meta.readdir(ctx, ino, False)  # no search permission: names only
            plus = False
        if plus:
            dotdot = entries[1]
            if dotdot.attr is None:
                try:
                    dotdot.attr = self.meta.getattr(dotdot.inode)
                except FsError:
                    dotdot.attr = Attr(typ=TYPE_DIRECTORY, mode=0o755, nlink=2)
            for e in entries[2:]:
                if e.attr is not None:
                    self._update_length(e.inode, e.attr)
        if ino in (ROOT_INODE, self.meta.root) and not self.conf.hide_internal:
            for name, (nino, _mode) in NODES.items():
                if nino == TRASH_INODE:
                    if self.meta.root != ROOT_INODE:
                        continue  # a subdir mount shows no trash (as JuiceFS)
                    attr = self.meta.getattr(TRASH_INODE) if plus else None
                    entries.append(Entry(name, nino, TYPE_DIRECTORY, attr))
                else:
                    entries.append(Entry(name, nino, TYPE_FILE, self._internal[nino].copy()))
        return entries

    @_op
    def releasedir(self, ctx: Context, fh: int) -> None:
        with self._hlock:
            h = self._handles.get(fh)
            if h is None or not h.is_dir:
                raise FsError(errno.EBADF)
            del self._handles[fh]

    # --- extended attributes ---------------------------------------------------------------------
    @staticmethod
    def _check_xattr_name(name: bytes) -> None:
        if len(name) > XATTR_MAX_NAME:
            raise FsError(errno.ERANGE)
        if not name:
            raise FsError(errno.EINVAL)
        if name in ACL_XATTRS:
            raise FsError(errno.ENOTSUP)

    @_op
    def getxattr(self, ctx: Context, ino: int, name: bytes) -> bytes:
        if is_special(ino):
            raise FsError(errno.ENODATA)
        self._check_xattr_name(name)
        return self.meta.getxattr(ctx, ino, name)

    @_op
    def setxattr(self, ctx: Context, ino: int, name: bytes, value: bytes, flags: int) -> None:
        if is_special(ino):
            raise FsError(errno.EPERM)
        if len(value) > XATTR_MAX_SIZE:
            raise FsError(errno.ERANGE)
        self._check_xattr_name(name)
        self.meta.setxattr(ctx, ino, name, value, flags)

    @_op
    def listxattr(self, ctx: Context, ino: int) -> list[bytes]:
        if is_special(ino):
            raise FsError(errno.ENODATA)
        return self.meta.listxattr(ctx, ino)

    @_op
    def removexattr(self, ctx: Context, ino: int, name: bytes) -> None:
        if is_special(ino):
            raise FsError(errno.EPERM)
        self._check_xattr_name(name)
        self.meta.removexattr(ctx, ino, name)

    # --- internal files ----------------------------------------------------------------------------
    def _internal_content(self, ino: int) -> bytes:
        if ino == STATS_INODE:
            return self._stats_text()
        if ino == CONFIG_INODE:
            return self._config
        if ino == LOG_INODE:
            return b""  # the access log is not recorded yet
        raise FsError(errno.ENOENT)
