"""`pyjuicefs mount` end to end: real mounts (sqlite3 + file storage, redis + file storage), driven
with plain os calls on the mount path, as a user's programs would."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import stat
import subprocess
import sys
import time

import pytest

KINDS = ["sqlite3", "redis"]


@pytest.mark.parametrize("kind", KINDS)
def test_posix_operations(volume, pyjuicefs_mount, kind):
    m = pyjuicefs_mount(volume(kind))
    root = m.path
    assert os.stat(root).st_ino == 1

    d = os.path.join(root, "dir")
    os.mkdir(d, 0o755)
    assert stat.S_ISDIR(os.stat(d).st_mode)
    with pytest.raises(FileExistsError):
        os.mkdir(d)

    f = os.path.join(d, "file")
    with open(f, "wb") as fp:
        fp.write(b"hello world")
    with open(f, "rb") as fp:
        assert fp.read() == b"hello world"
    st = os.stat(f)
    assert stat.S_ISREG(st.st_mode) and st.st_size == 11 and st.st_nlink == 1
    assert st.st_blocks == 1 and st.st_blksize == 0x10000

    # append and overwrite in the middle through one descriptor
    fd = os.open(f, os.O_RDWR | os.O_APPEND)
    os.write(fd, b"!")
    os.close(fd)
    fd = os.open(f, os.O_RDWR)
    os.pwrite(fd, b"W", 6)
    assert os.pread(fd, 100, 0) == b"hello World!"
    os.close(fd)

    # rename, within and across directories
    g = os.path.join(root, "moved")
    os.rename(f, g)
    assert not os.path.exists(f) and open(g, "rb").read() == b"hello World!"
    os.rename(g, f)

    # symlink / readlink
    s = os.path.join(root, "link")
    os.symlink("dir/file", s)
    assert os.readlink(s) == "dir/file"
    assert stat.S_ISLNK(os.lstat(s).st_mode) and os.lstat(s).st_size == len("dir/file")
    assert open(s, "rb").read() == b"hello World!"

    # hard link
    h = os.path.join(root, "hard")
    os.link(f, h)
    assert os.stat(f).st_nlink == 2 and os.stat(h).st_ino == os.stat(f).st_ino

    # chmod / utime / truncate
    os.chmod(f, 0o600)
    assert stat.S_IMODE(os.stat(f).st_mode) == 0o600
    os.utime(f, ns=(1_000_000_123, 2_000_000_456))
    st = os.stat(f)
    assert (st.st_atime_ns, st.st_mtime_ns) == (1_000_000_123, 2_000_000_456)
    os.truncate(f, 5)
    assert os.stat(f).st_size == 5 and open(f, "rb").read() == b"hello"
    os.truncate(f, 70000)  # grows with a hole past one 64 KiB unit
    data = open(f, "rb").read()
    assert len(data) == 70000 and data[:5] == b"hello" and data[5:] == bytes(69995)

    # listing
    assert sorted(os.listdir(root)) == sorted(["dir", "link", "hard", ".accesslog", ".stats", ".config", ".trash"])
    assert os.listdir(d) == ["file"]

    # unlink / rmdir
    with pytest.raises(OSError) as ei:
        os.rmdir(d)
    assert ei.value.errno == errno.ENOTEMPTY
    os.unlink(h)
    assert os.stat(f).st_nlink == 1
    os.unlink(f)
    os.unlink(s)
    os.rmdir(d)
    with pytest.raises(FileNotFoundError):
        os.stat(d)

    # statfs
    sv = os.statvfs(root)
    assert sv.f_bsize == 4096 and sv.f_namemax == 255
    assert sv.f_blocks >= sv.f_bavail > 0 and sv.f_files >= sv.f_ffree > 0
    assert sv.f_blocks == 1 << 38  # 1 PiB without a capacity quota, as JuiceFS


@pytest.mark.parametrize("kind", KINDS)
def test_big_file_sha256(volume, pyjuicefs_mount, kind):
    m = pyjuicefs_mount(volume(kind))
    data = os.urandom(10 << 20)
    path = os.path.join(m.path, "big")
    with open(path, "wb") as f:
        for i in range(0, len(data), 1 << 20):
            f.write(data[i:i + (1 << 20)])
    assert os.stat(path).st_size == len(data)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    assert h.hexdigest() == hashlib.sha256(data).hexdigest()
    with open(path, "rb") as f:  # a random read in the middle
        f.seek(5_000_001)
        assert f.read(70_000) == data[5_000_001:5_070_001]


def test_data_survives_remount(volume, pyjuicefs_mount):
    url = volume("sqlite3")
    m = pyjuicefs_mount(url)
    payload = os.urandom(300_000)
    with open(os.path.join(m.path, "keep"), "wb") as f:
        f.write(payload)
    os.makedirs(os.path.join(m.path, "a/b/c"))
    m.umount()
    assert not m.mounted and m.proc.returncode == 0, m.log()
    m2 = pyjuicefs_mount(url)
    assert open(os.path.join(m2.path, "keep"), "rb").read() == payload
    assert os.path.isdir(os.path.join(m2.path, "a/b/c"))


def test_large_directory_listing(volume, pyjuicefs_mount):
    """Many readdir requests over one directory: offsets must be stable across them."""
    m = pyjuicefs_mount(volume("sqlite3"))
    d = os.path.join(m.path, "many")
    os.mkdir(d)
    names = {f"entry-{i:04d}-{'x' * (i % 40)}" for i in range(600)}
    for n in names:
        open(os.path.join(d, n), "wb").close()
    assert set(os.listdir(d)) == names
    with os.scandir(d) as it:
        seen = {e.name: e.is_file() for e in it}
    assert set(seen) == names and all(seen.values())


def test_xattrs_enabled(volume, pyjuicefs_mount):
    m = pyjuicefs_mount(volume("sqlite3"), None, "--enable-xattr")
    f = os.path.join(m.path, "x")
    open(f, "wb").close()
    os.setxattr(f, "user.a", b"1")
    os.setxattr(f, "user.b", b"\x00\xff" * 100)
    assert os.getxattr(f, "user.a") == b"1"
    assert os.getxattr(f, "user.b") == b"\x00\xff" * 100
    assert sorted(os.listxattr(f)) == ["user.a", "user.b"]
    with pytest.raises(OSError) as ei:
        os.setxattr(f, "user.a", b"2", os.XATTR_CREATE)
    assert ei.value.errno == errno.EEXIST
    with pytest.raises(OSError) as ei:
        os.setxattr(f, "user.c", b"2", os.XATTR_REPLACE)
    assert ei.value.errno == errno.ENODATA
    os.setxattr(f, "user.a", b"22", os.XATTR_REPLACE)
    assert os.getxattr(f, "user.a") == b"22"
    os.removexattr(f, "user.a")
    assert os.listxattr(f) == ["user.b"]
    with pytest.raises(OSError) as ei:
        os.getxattr(f, "user.a")
    assert ei.value.errno == errno.ENODATA


def test_xattrs_disabled_by_default(volume, pyjuicefs_mount):
    m = pyjuicefs_mount(volume("sqlite3"))
    f = os.path.join(m.path, "x")
    open(f, "wb").close()
    for call in (lambda: os.setxattr(f, "user.a", b"1"), lambda: os.getxattr(f, "user.a"),
                 lambda: os.listxattr(f), lambda: os.removexattr(f, "user.a")):
        with pytest.raises(OSError) as ei:
            call()
        assert ei.value.errno == errno.ENOTSUP


_LOCKER = """
import fcntl, sys, time
f = open(sys.argv[1], "rb")
fcntl.flock(f, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.readline()
fcntl.flock(f, fcntl.LOCK_UN)
print("unlocked", flush=True)
sys.stdin.readline()
"""


def test_flock_between_two_processes(volume, pyjuicefs_mount):
    m = pyjuicefs_mount(volume("sqlite3"))
    path = os.path.join(m.path, "lockfile")
    open(path, "wb").close()
    holder = subprocess.Popen([sys.executable, "-c", _LOCKER, path], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with open(path, "rb") as f:
            with pytest.raises(BlockingIOError):
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            holder.stdin.write("\n")
            holder.stdin.flush()
            assert holder.stdout.readline().strip() == "unlocked"
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free now
            fcntl.flock(f, fcntl.LOCK_UN)
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.wait(timeout=10) == 0
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_posix_lock_between_two_processes(volume, pyjuicefs_mount):
    m = pyjuicefs_mount(volume("sqlite3"))
    path = os.path.join(m.path, "plock")
    with open(path, "wb") as f:
        f.write(b"x" * 100)
    code = ("import fcntl,sys\nf=open(sys.argv[1],'r+b')\nfcntl.lockf(f,fcntl.LOCK_EX,10,0)\n"
            "print('locked',flush=True)\nsys.stdin.readline()\n")
    holder = subprocess.Popen([sys.executable, "-c", code, path], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with open(path, "r+b") as f:
            with pytest.raises(OSError) as ei:
                fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 0)
            assert ei.value.errno in (errno.EAGAIN, errno.EACCES)
            fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 50)  # a range nobody holds
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.wait(timeout=10) == 0
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_internal_files_and_fsname(volume, pyjuicefs_mount):
    m = pyjuicefs_mount(volume("sqlite3"))
    conf = json.loads(open(os.path.join(m.path, ".config"), "rb").read())
    assert isinstance(conf, dict) and conf
    with open("/proc/self/mounts") as f:
        line = next(x for x in f if x.split()[1] == os.path.realpath(m.path))
    source, _, fstype, opts = line.split()[:4]
    assert source == "pyjuicefs:fusetest" and fstype == "fuse.pyjuicefs"
    assert "default_permissions" in opts.split(",")
    if os.getuid() == 0:
        assert "allow_other" in opts.split(",")
    assert "OK, fusetest is ready at" in m.log()


def test_read_only_mount(volume, pyjuicefs_mount):
    url = volume("sqlite3")
    m = pyjuicefs_mount(url)
    open(os.path.join(m.path, "f"), "wb").write(b"data")
    m.umount()
    ro = pyjuicefs_mount(url, None, "--read-only")
    assert open(os.path.join(ro.path, "f"), "rb").read() == b"data"
    with pytest.raises(OSError) as ei:
        open(os.path.join(ro.path, "g"), "wb")
    assert ei.value.errno == errno.EROFS


def test_sigterm_unmounts_cleanly(volume, pyjuicefs_mount):
    url = volume("sqlite3")
    m = pyjuicefs_mount(url)
    with open(os.path.join(m.path, "before-term"), "wb") as f:
        f.write(b"z" * 100_000)
    m.proc.terminate()
    assert m.proc.wait(timeout=30) == 0, m.log()
    deadline = time.monotonic() + 5
    while m.mounted and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not m.mounted
    assert "Received signal SIGTERM" in m.log() and "Traceback" not in m.log()
    m2 = pyjuicefs_mount(url)
    assert open(os.path.join(m2.path, "before-term"), "rb").read() == b"z" * 100_000


def test_sigint_unmounts_cleanly(volume, pyjuicefs_mount):
    m = pyjuicefs_mount(volume("sqlite3"))
    m.proc.send_signal(2)
    assert m.proc.wait(timeout=30) == 0, m.log()
    assert not m.mounted and "Traceback" not in m.log()


def test_umount_command(volume, pyjuicefs_mount):
    m = pyjuicefs_mount(volume("sqlite3"))
    p = subprocess.run([sys.executable, "-m", "pyjuicefs", "umount", m.path], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    assert m.proc.wait(timeout=30) == 0, m.log()
    assert not m.mounted
    p = subprocess.run([sys.executable, "-m", "pyjuicefs", "umount", m.path], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode != 0 and len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_copy_file_range_and_fallocate_fallbacks(volume, pyjuicefs_mount):
    """copy_file_range, posix_fallocate and fallocate(2) work on a mount (the patched pyfuse3
    passes them to the VFS: docs/dev/fuse.md)."""
    import ctypes

    m = pyjuicefs_mount(volume("sqlite3"))
    data = os.urandom(200_000)
    src = os.open(os.path.join(m.path, "src"), os.O_CREAT | os.O_RDWR)
    dst = os.open(os.path.join(m.path, "dst"), os.O_CREAT | os.O_RDWR)
    try:
        os.write(src, data)
        copied = 0
        while copied < len(data):
            n = os.copy_file_range(src, dst, len(data) - copied, copied, copied)
            assert n > 0
            copied += n
        assert os.pread(dst, len(data) + 1, 0) == data
        os.posix_fallocate(dst, 0, 300_000)
        assert os.fstat(dst).st_size == 300_000 and os.pread(dst, 10, 250_000) == bytes(10)
        libc = ctypes.CDLL(None, use_errno=True)
        assert libc.fallocate(dst, 0, ctypes.c_long(0), ctypes.c_long(400_000)) == 0
        assert os.fstat(dst).st_size == 400_000
    finally:
        os.close(src)
        os.close(dst)


def test_subdir_mount(volume, pyjuicefs_mount):
    url = volume("sqlite3")
    m = pyjuicefs_mount(url)
    os.makedirs(os.path.join(m.path, "sub/inner"))
    open(os.path.join(m.path, "sub/inner/f"), "wb").write(b"in sub")
    m.umount()
    s = pyjuicefs_mount(url, None, "--subdir", "sub")
    assert os.path.isdir(os.path.join(s.path, "inner"))
    assert open(os.path.join(s.path, "inner/f"), "rb").read() == b"in sub"
    assert not os.path.exists(os.path.join(s.path, "sub"))


def test_writeback_cache_option(volume, pyjuicefs_mount):
    m = pyjuicefs_mount(volume("sqlite3"), None, "-o", "writeback_cache")
    path = os.path.join(m.path, "wb")
    data = os.urandom(1 << 20)
    with open(path, "wb") as f:
        f.write(data)
    with open(path, "ab") as f:
        f.write(b"tail")
    assert open(path, "rb").read() == data + b"tail"
    assert os.stat(path).st_size == len(data) + 4


def test_concurrent_writers_and_readers(volume, pyjuicefs_mount):
    """Many requests in flight at once: the adapter's worker threads must keep them apart."""
    from concurrent.futures import ThreadPoolExecutor

    m = pyjuicefs_mount(volume("redis"))
    blobs = {f"t{i}": os.urandom(300_000 + i * 1000) for i in range(8)}

    def write_then_read(name: str) -> bool:
        p = os.path.join(m.path, name)
        with open(p, "wb") as f:
            for off in range(0, len(blobs[name]), 65536):
                f.write(blobs[name][off:off + 65536])
        os.stat(m.path)
        return open(p, "rb").read() == blobs[name]

    with ThreadPoolExecutor(8) as ex:
        assert all(ex.map(write_then_read, blobs))
    assert sorted(n for n in os.listdir(m.path) if not n.startswith(".")) == sorted(blobs)
    stats = open(os.path.join(m.path, ".stats"), "rb").read()  # direct_io: content, whatever the size
    assert isinstance(stats, bytes)


def test_caller_identity_and_permissions(volume, pyjuicefs_mount):
    """New nodes belong to the caller (uid, gid, umask from the request); the kernel enforces modes."""
    m = pyjuicefs_mount(volume("sqlite3"))
    pub = os.path.join(m.path, "pub")
    priv = os.path.join(m.path, "priv")
    os.mkdir(pub)
    os.chmod(pub, 0o777)
    os.mkdir(priv, 0o700)
    assert os.getuid() == 0, "this test acts as another user: run the suite as root"
    # A shell, not Python: the interpreter may live where nobody cannot read it.
    script = ('umask 027 && : > "$1/mine" && mkdir "$1/mydir" && '
              '{ ls "$2" >/dev/null 2>&1 && echo listed || echo denied; }')

    def as_nobody() -> None:
        os.setgroups([65533])
        os.setgid(65534)
        os.setuid(65534)

    p = subprocess.run(["/bin/sh", "-c", script, "sh", pub, priv], preexec_fn=as_nobody, capture_output=True,
                       text=True, timeout=60, cwd="/")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "denied"
    st = os.stat(os.path.join(pub, "mine"))
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (65534, 65534, 0o640)
    st = os.stat(os.path.join(pub, "mydir"))
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (65534, 65534, 0o750)
