"""POSIX corners on a real mount that the state machine does not drive: mmap, special files,
statfs under a capacity and inode quota, trash of an unlinked file."""

from __future__ import annotations

import errno
import mmap
import os
import stat

import pytest


def test_mmap_shared_write_then_read_after_reopen(volume, pyjuicefs_mount):
    m = pyjuicefs_mount(volume("sqlite3"))
    path = os.path.join(m.path, "mapped")
    size = 3 * mmap.PAGESIZE + 123
    with open(path, "wb") as f:
        f.truncate(size)
    with open(path, "r+b") as f, mmap.mmap(f.fileno(), size) as mm:
        mm[0:5] = b"hello"
        mm[size - 5:size] = b"world"
        mm.flush()
    with open(path, "rb") as f:
        data = f.read()
    assert len(data) == size and data[:5] == b"hello" and data[-5:] == b"world"
    assert data[5:-5] == bytes(size - 10)
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        assert mm[:5] == b"hello"


def test_fifo_device_and_socket_nodes(volume, pyjuicefs_mount):
    m = pyjuicefs_mount(volume("redis"))
    fifo = os.path.join(m.path, "fifo")
    os.mkfifo(fifo, 0o640)
    st = os.lstat(fifo)
    assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o640
    dev = os.path.join(m.path, "null")
    os.mknod(dev, stat.S_IFCHR | 0o600, os.makedev(1, 3))  # we run as root
    st = os.lstat(dev)
    assert stat.S_ISCHR(st.st_mode) and (os.major(st.st_rdev), os.minor(st.st_rdev)) == (1, 3)
    sock = os.path.join(m.path, "sock")
    os.mknod(sock, stat.S_IFSOCK | 0o600)
    assert stat.S_ISSOCK(os.lstat(sock).st_mode)
    # A FIFO on the mount is a real pipe between processes (the kernel serves it).
    pid = os.fork()
    if pid == 0:  # child: write and exit without running pytest's teardown
        try:
            with open(fifo, "wb") as w:
                w.write(b"through the fifo")
        finally:
            os._exit(0)
    with open(fifo, "rb") as r:
        assert r.read() == b"through the fifo"
    os.waitpid(pid, 0)


def test_statfs_and_quota_of_the_volume(volume, pyjuicefs_mount):
    m = pyjuicefs_mount(volume("sqlite3", "--capacity", "1", "--inodes", "5"))
    sv = os.statvfs(m.path)
    assert sv.f_blocks * sv.f_frsize == 1 << 30
    assert sv.f_files == 5  # used + available inodes equal the limit
    made = 0
    with pytest.raises(OSError) as e:
        for i in range(10):
            with open(os.path.join(m.path, f"f{i}"), "wb"):
                made += 1
    assert e.value.errno == errno.ENOSPC and made <= 5
    with pytest.raises(OSError) as e:  # a length is charged as space (JuiceFS), data or not
        os.truncate(os.path.join(m.path, "f0"), 2 << 30)
    assert e.value.errno == errno.ENOSPC


def test_unlinked_file_goes_to_trash_when_trash_is_on(volume, pyjuicefs_mount):
    url = volume("sqlite3", "--trash-days", "1")  # the last --trash-days given wins
    m = pyjuicefs_mount(url)
    with open(os.path.join(m.path, "doomed"), "wb") as f:
        f.write(b"keep me a day")
    os.unlink(os.path.join(m.path, "doomed"))
    hours = os.listdir(os.path.join(m.path, ".trash"))
    assert len(hours) == 1
    names = os.listdir(os.path.join(m.path, ".trash", hours[0]))
    assert len(names) == 1 and names[0].endswith("-doomed")
    with open(os.path.join(m.path, ".trash", hours[0], names[0]), "rb") as f:
        assert f.read() == b"keep me a day"
