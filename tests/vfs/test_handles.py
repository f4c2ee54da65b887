"""Handles and file operations of the VFS: unlink/rename of open files, fallocate,
copy_file_range, xattrs, locks, directory handles, internal files, object cleanup."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import random

from vfs_helpers import CTX, KIB, ROOT, create, raises_errno, read_file, write_file

from pyjuicefs.meta.base_common import (
    FALLOC_KEEP_SIZE,
    FALLOC_PUNCH_HOLE,
    FALLOC_ZERO_RANGE,
    XATTR_CREATE,
    XATTR_REPLACE,
    Context,
)
from pyjuicefs.meta.types import SET_ATTR_MODE, SET_ATTR_MTIME, TRASH_INODE, TYPE_FILE, Attr
from pyjuicefs.vfs import CONFIG_INODE, LOG_INODE, STATS_INODE, is_internal

BS = 64 * KIB


def test_unlink_while_open_then_read(vfs, volume):
    data = random.Random(1).randbytes(3 * BS + 5)
    ino = write_file(vfs, b"doomed", data)
    fh, _ = vfs.open(CTX, ino, os.O_RDONLY)
    vfs.unlink(CTX, ROOT, b"doomed")
    with raises_errno(errno.ENOENT):
        vfs.lookup(CTX, ROOT, b"doomed")
    assert vfs.read(CTX, fh, 0, len(data) + 10) == data  # still readable through the handle
    assert volume.chunk_objects()
    vfs.release(CTX, fh)  # the last close deletes the file and its objects
    with raises_errno(errno.ENOENT):
        vfs.getattr(CTX, ino)
    assert volume.chunk_objects() == []


def test_unlink_while_open_for_writing(vfs, volume):
    fh, ino = create(vfs, b"w-doomed")
    vfs.write(CTX, fh, 0, b"a" * BS)
    vfs.unlink(CTX, ROOT, b"w-doomed")
    vfs.write(CTX, fh, BS, b"b" * 10)
    assert vfs.read(CTX, fh, BS - 2, 100) == b"aabbbbbbbbbb"
    vfs.release(CTX, fh)
    assert volume.chunk_objects() == []


def test_deleted_files_free_their_objects(vfs, volume):
    ino = write_file(vfs, b"gone", os.urandom(2 * BS + 1))
    assert len(volume.chunk_objects()) == 3
    vfs.unlink(CTX, ROOT, b"gone")
    assert volume.chunk_objects() == []
    # overwritten data: truncate frees nothing until the file goes, then all of it goes
    ino = write_file(vfs, b"gone2", b"x" * BS)
    fh, _ = vfs.open(CTX, ino, os.O_WRONLY | os.O_TRUNC)
    vfs.write(CTX, fh, 0, b"y" * 10)
    vfs.release(CTX, fh)
    vfs.unlink(CTX, ROOT, b"gone2")
    assert volume.chunk_objects() == []


def test_rename_over_open_file(vfs, volume):
    old = write_file(vfs, b"target", b"old data")
    new = write_file(vfs, b"tmp", b"new data")
    fh, _ = vfs.open(CTX, old, os.O_RDONLY)
    vfs.rename(CTX, ROOT, b"tmp", ROOT, b"target", 0)
    assert vfs.lookup(CTX, ROOT, b"target").inode == new
    assert vfs.read(CTX, fh, 0, 100) == b"old data"  # the replaced file lives while open
    vfs.release(CTX, fh)
    with raises_errno(errno.ENOENT):
        vfs.getattr(CTX, old)
    assert read_file(vfs, new) == b"new data"
    assert len(volume.chunk_objects()) == 1


def test_fallocate_modes(vfs):
    ino = write_file(vfs, b"fa", b"a" * 1000)
    fh, _ = vfs.open(CTX, ino, os.O_RDWR)
    vfs.fallocate(CTX, fh, 0, 500, 1000)  # extends
    assert vfs.getattr(CTX, ino).length == 1500
    vfs.fallocate(CTX, fh, FALLOC_KEEP_SIZE, 0, 5000)  # keeps the size
    assert vfs.getattr(CTX, ino).length == 1500
    vfs.write(CTX, fh, 0, b"b" * 100)  # pending: the hole punched next must cover it
    vfs.fallocate(CTX, fh, FALLOC_PUNCH_HOLE | FALLOC_KEEP_SIZE, 50, 100)
    vfs.fallocate(CTX, fh, FALLOC_ZERO_RANGE, 900, 200)
    assert vfs.read(CTX, fh, 0, 2000) == b"b" * 50 + b"\0" * 100 + b"a" * 750 + b"\0" * 600
    with raises_errno(errno.EINVAL):
        vfs.fallocate(CTX, fh, FALLOC_PUNCH_HOLE, 0, 10)  # punch needs KEEP_SIZE
    with raises_errno(errno.EINVAL):
        vfs.fallocate(CTX, fh, 0, 0, 0)
    vfs.release(CTX, fh)


def test_copy_file_range(vfs):
    src_data = random.Random(2).randbytes(2 * BS + 100)
    src = write_file(vfs, b"src", src_data)
    fin, _ = vfs.open(CTX, src, os.O_RDONLY)
    fout, dst = create(vfs, b"dst")
    vfs.write(CTX, fout, 0, b"d" * 50)  # pending writes of the destination go first
    n = vfs.copy_file_range(CTX, fin, 10, fout, 20, BS + 5, 0)
    assert n == BS + 5
    assert vfs.getattr(CTX, dst).length == 20 + BS + 5
    assert vfs.read(CTX, fin, 0, 10) == src_data[:10]
    # past the end of the source: copies what there is
    assert vfs.copy_file_range(CTX, fin, 2 * BS, fout, 0, BS, 0) == 100
    assert vfs.copy_file_range(CTX, fin, 10 * BS, fout, 0, BS, 0) == 0
    with raises_errno(errno.EINVAL):
        vfs.copy_file_range(CTX, fout, 0, fout, 10, 20, 0)  # overlapping ranges of one file
    vfs.release(CTX, fin)
    vfs.release(CTX, fout)
    want = bytearray(b"d" * 50)
    want.extend(bytes(20 + BS + 5 - len(want)))
    want[20:20 + BS + 5] = src_data[10:10 + BS + 5]
    want[0:100] = src_data[2 * BS:]  # the second copy lands over the first
    assert read_file(vfs, dst) == bytes(want)
    # shared slices: deleting the source keeps the copy readable
    vfs.unlink(CTX, ROOT, b"src")
    assert read_file(vfs, dst) == bytes(want)


def test_xattrs(vfs):
    ino = write_file(vfs, b"x", b"")
    vfs.setxattr(CTX, ino, b"user.a", b"1", 0)
    vfs.setxattr(CTX, ino, b"user.b", b"", XATTR_CREATE)
    assert vfs.getxattr(CTX, ino, b"user.a") == b"1"
    assert vfs.listxattr(CTX, ino) == [b"user.a", b"user.b"]
    with raises_errno(errno.EEXIST):
        vfs.setxattr(CTX, ino, b"user.a", b"2", XATTR_CREATE)
    vfs.setxattr(CTX, ino, b"user.a", b"2", XATTR_REPLACE)
    assert vfs.getxattr(CTX, ino, b"user.a") == b"2"
    vfs.removexattr(CTX, ino, b"user.a")
    with raises_errno(errno.ENODATA):
        vfs.getxattr(CTX, ino, b"user.a")
    with raises_errno(errno.ENODATA):
        vfs.removexattr(CTX, ino, b"user.a")
    with raises_errno(errno.ERANGE):
        vfs.setxattr(CTX, ino, b"user.big", b"v" * 65537, 0)
    with raises_errno(errno.ERANGE):
        vfs.getxattr(CTX, ino, b"u" * 256)
    with raises_errno(errno.ENOTSUP):
        vfs.getxattr(CTX, ino, b"system.posix_acl_access")
    with raises_errno(errno.ENODATA):
        vfs.getxattr(CTX, STATS_INODE, b"user.a")
    with raises_errno(errno.EPERM):
        vfs.setxattr(CTX, STATS_INODE, b"user.a", b"1", 0)


def test_flock_between_handles(vfs):
    ino = write_file(vfs, b"lock", b"")
    fh1, _ = vfs.open(CTX, ino, os.O_RDWR)
    fh2, _ = vfs.open(CTX, ino, os.O_RDWR)
    vfs.flock(CTX, fh1, 1, fcntl.LOCK_EX)
    with raises_errno(errno.EAGAIN):
        vfs.flock(CTX, fh2, 2, fcntl.LOCK_SH | fcntl.LOCK_NB)
    vfs.flock(CTX, fh1, 1, fcntl.LOCK_UN)
    vfs.flock(CTX, fh2, 2, fcntl.LOCK_SH | fcntl.LOCK_NB)
    vfs.flock(CTX, fh1, 1, fcntl.LOCK_SH | fcntl.LOCK_NB)  # shared locks coexist
    with raises_errno(errno.EAGAIN):
        vfs.flock(CTX, fh1, 1, fcntl.LOCK_EX | fcntl.LOCK_NB)
    vfs.release(CTX, fh2)  # releasing the handle drops its flock
    vfs.flock(CTX, fh1, 1, fcntl.LOCK_EX | fcntl.LOCK_NB)
    with raises_errno(errno.EINVAL):
        vfs.flock(CTX, fh1, 1, 0)
    vfs.release(CTX, fh1)


def test_posix_locks(vfs):
    ino = write_file(vfs, b"plock", b"")
    fh1, _ = vfs.open(CTX, ino, os.O_RDWR)
    fh2, _ = vfs.open(CTX, ino, os.O_RDWR)
    vfs.setlk(Context(pid=11), fh1, 11, fcntl.F_WRLCK, 0, 99, False)
    assert vfs.getlk(Context(pid=22), fh2, 22, fcntl.F_RDLCK, 50, 60) == (fcntl.F_WRLCK, 0, 99, 11)
    assert vfs.getlk(Context(pid=22), fh2, 22, fcntl.F_RDLCK, 100, 200)[0] == fcntl.F_UNLCK
    with raises_errno(errno.EAGAIN):
        vfs.setlk(Context(pid=22), fh2, 22, fcntl.F_RDLCK, 10, 20, False)
    vfs.flush(Context(pid=11), fh1, 11)  # close(2) of the owner drops its POSIX locks
    vfs.setlk(Context(pid=22), fh2, 22, fcntl.F_RDLCK, 10, 20, False)
    vfs.release(CTX, fh1)
    vfs.release(CTX, fh2)


def test_readdir_offsets_are_stable(vfs):
    d = vfs.mkdir(CTX, ROOT, b"dir", 0o755)
    for i in range(10):
        write_file(vfs, b"f%d" % i, b"", parent=d.inode)
    fh = vfs.opendir(CTX, d.inode)
    first = vfs.readdir(CTX, fh, 0, False)
    names = [e.name for e, _ in first]
    assert names[:2] == [b".", b".."] and sorted(names[2:]) == sorted(b"f%d" % i for i in range(10))
    assert [o for _, o in first] == list(range(1, 13))
    # entries removed or added after the snapshot do not shift offsets
    vfs.unlink(CTX, d.inode, names[3])
    write_file(vfs, b"late", b"", parent=d.inode)
    rest = vfs.readdir(CTX, fh, 5, True)
    assert [e.name for e, _ in rest] == names[5:]
    assert all(e.attr is not None for e, _ in rest)
    # offset 0 starts a new snapshot (rewinddir)
    again = [e.name for e, _ in vfs.readdir(CTX, fh, 0, False)]
    assert b"late" in again and names[3] not in again
    vfs.releasedir(CTX, fh)
    with raises_errno(errno.EBADF):
        vfs.readdir(CTX, fh, 0, False)
    with raises_errno(errno.ENOTDIR):
        vfs.opendir(CTX, write_file(vfs, b"plain", b""))


def test_readdir_plus_reports_pending_length(vfs):
    fh, ino = create(vfs, b"growing")
    vfs.write(CTX, fh, 0, b"z" * 777)
    dfh = vfs.opendir(CTX, ROOT)
    got = {e.name: e for e, _ in vfs.readdir(CTX, dfh, 0, True)}
    assert got[b"growing"].attr.length == 777
    assert got[b".."].attr is not None
    vfs.releasedir(CTX, dfh)
    vfs.release(CTX, fh)


def test_internal_files(vfs):
    dfh = vfs.opendir(CTX, ROOT)
    names = [e.name for e, _ in vfs.readdir(CTX, dfh, 0, False)]
    vfs.releasedir(CTX, dfh)
    assert names[-4:] == [b".accesslog", b".stats", b".config", b".trash"]
    e = vfs.lookup(CTX, ROOT, b".stats")
    assert e.inode == STATS_INODE == 0x7FFFFFFF00000003 and e.attr.typ == TYPE_FILE
    assert vfs.lookup(CTX, ROOT, b".config").inode == CONFIG_INODE
    assert vfs.lookup(CTX, ROOT, b".accesslog").inode == LOG_INODE
    assert vfs.lookup(CTX, ROOT, b".trash").inode == TRASH_INODE
    assert is_internal(STATS_INODE) and not is_internal(TRASH_INODE)
    with raises_errno(errno.ENOENT):
        vfs.lookup(CTX, ROOT, b".control")

    write_file(vfs, b"counted", b"12345")
    fh, _ = vfs.open(CTX, STATS_INODE, os.O_RDONLY)
    text = vfs.read(CTX, fh, 0, 1 << 20).decode()
    vfs.release(CTX, fh)
    metrics = dict(line.rsplit(" ", 1) for line in text.splitlines())
    assert int(metrics["juicefs_fuse_written_size_bytes_sum"]) >= 5
    # FUSE request counts come from the FUSE adapter (tests/fuse/test_observability.py), not the VFS.
    assert int(metrics["juicefs_object_request_durations_histogram_seconds_PUT_total"]) >= 1

    attr = vfs.getattr(CTX, CONFIG_INODE)
    fh, _ = vfs.open(CTX, CONFIG_INODE, os.O_RDONLY)
    raw = vfs.read(CTX, fh, 0, 1 << 20)
    vfs.release(CTX, fh)
    assert len(raw) == attr.length
    conf = json.loads(raw)
    assert conf["Format"]["Name"] == "vfstest" and conf["Chunk"]["BlockSize"] == BS

    fh, _ = vfs.open(CTX, LOG_INODE, os.O_RDONLY)
    assert vfs.read(CTX, fh, 0, 100) == b""
    vfs.release(CTX, fh)

    with raises_errno(errno.EACCES):
        vfs.open(CTX, STATS_INODE, os.O_WRONLY)
    for bad in (lambda: vfs.unlink(CTX, ROOT, b".stats"), lambda: vfs.rename(CTX, ROOT, b".config", ROOT, b"c", 0),
                lambda: vfs.setattr(CTX, STATS_INODE, SET_ATTR_MODE, Attr(mode=0o777))):
        with raises_errno(errno.EPERM):
            bad()
    with raises_errno(errno.EEXIST):
        vfs.create(CTX, ROOT, b".stats", 0o644, os.O_RDWR)
    with raises_errno(errno.EEXIST):
        vfs.mkdir(CTX, ROOT, b".control", 0o755)


def test_hide_internal(mount):
    vfs = mount(hide_internal=True)
    dfh = vfs.opendir(CTX, ROOT)
    names = [e.name for e, _ in vfs.readdir(CTX, dfh, 0, False)]
    assert names == [b".", b".."]
    assert vfs.lookup(CTX, ROOT, b".stats").inode == STATS_INODE  # still reachable by name


def test_setattr_mtime_with_pending_writes(vfs):
    fh, ino = create(vfs, b"mt")
    vfs.write(CTX, fh, 0, b"data")
    attr = vfs.setattr(CTX, ino, SET_ATTR_MTIME, Attr(mtime=1_000_000, mtimensec=5))
    assert attr.length == 4
    vfs.release(CTX, fh)  # the commit keeps the mtime that was set
    a = vfs.getattr(CTX, ino)
    assert (a.mtime, a.length) == (1_000_000, 4)


def test_mknod_and_names(vfs):
    import stat

    e = vfs.mknod(CTX, ROOT, b"fifo", stat.S_IFIFO | 0o644, 0)
    assert stat.S_ISFIFO(e.attr.smode)
    e = vfs.mknod(CTX, ROOT, b"reg", 0o600, 0)
    assert stat.S_ISREG(e.attr.smode)
    with raises_errno(errno.ENAMETOOLONG):
        vfs.lookup(CTX, ROOT, b"n" * 256)
    s = vfs.symlink(CTX, ROOT, b"ln", b"reg")
    assert vfs.readlink(CTX, s.inode) == b"reg"
    h = vfs.link(CTX, e.inode, ROOT, b"hard")
    assert h.attr.nlink == 2
    assert vfs.statfs(CTX, ROOT).iused == 3  # fifo, reg, ln (a hard link is no new inode)
