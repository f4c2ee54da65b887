"""Two mounts of one volume (two mount processes, two sessions): close-to-open consistency, and flock /
POSIX locks that hold across mounts.

The pyjuicefs variants are the tests; the reference variants (two `juicefs mount`s) are cheap and check
that the expectations are ones JuiceFS itself meets.
"""

from __future__ import annotations

import errno
import fcntl
import os
import subprocess
import sys
import time

import pytest

from fsmodel import format_volume

CLIENTS = ["pyjuicefs", "juicefs"]

# Holds a lock on a file until its stdin closes; prints "locked" once it has the lock.
HOLDER = r"""
import fcntl, sys
kind, path = sys.argv[1], sys.argv[2]
f = open(path, "r+b")
if kind == "flock":
    fcntl.flock(f, fcntl.LOCK_EX)
else:
    fcntl.lockf(f, fcntl.LOCK_EX, 10, 0)
print("locked", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def two_mounts(request, pyjuicefs_mount, juicefs_mount, new_meta_url, tmp_path, juicefs_bin):
    client = request.param
    meta = new_meta_url("redis")
    format_volume(client, meta, "twomounts", "--storage", "file", "--bucket", f"{tmp_path / 'bucket'}/",
                  "--trash-days", "0", juicefs_bin=juicefs_bin)
    mount = pyjuicefs_mount if client == "pyjuicefs" else juicefs_mount
    a = mount(meta)
    try:
        b = mount(meta)
        try:
            yield a.path, b.path
        finally:
            b.umount()
    finally:
        a.umount()


def eventually(cond, what: str, timeout: float = 5.0) -> None:
    """Wait for cond() to hold: name-level changes reach another mount within its cache TTLs (1 s)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if cond():
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} (waited {timeout}s)")
        time.sleep(0.1)


def write(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


@pytest.mark.parametrize("two_mounts", CLIENTS, indirect=True)
def test_close_to_open(two_mounts):
    a, b = two_mounts
    # write: a new file closed on A is seen whole by an open on B
    first = os.urandom(1 << 20)
    write(f"{a}/f", first)
    assert read(f"{b}/f") == first
    # overwrite, shorter: B (which has the old size and pages cached) sees the new bytes and size
    second = b"second version"
    write(f"{a}/f", second)
    assert read(f"{b}/f") == second
    # and the other way round, longer, from B to A
    third = os.urandom(3 << 20)
    write(f"{b}/f", third)
    assert read(f"{a}/f") == third
    # append on A, read on B
    with open(f"{a}/f", "ab") as f:
        f.write(b"tail")
    assert read(f"{b}/f") == third + b"tail"
    # rename on A: B finds the new name at once, with the same bytes; the old name goes away once B's
    # entry cache (1 s by default, as in JuiceFS) expires
    os.rename(f"{a}/f", f"{a}/g")
    assert read(f"{b}/g") == third + b"tail"
    eventually(lambda: not os.path.exists(f"{b}/f"), "old name still visible on B after rename on A")
    # rename over an existing file B has read
    write(f"{a}/h", b"old h")
    assert read(f"{b}/h") == b"old h"
    os.rename(f"{a}/g", f"{a}/h")
    eventually(lambda: read(f"{b}/h") == third + b"tail", "B still reads the replaced file after rename over it")
    # unlink on A: an open on B fails
    os.unlink(f"{a}/h")
    eventually(lambda: not os.path.exists(f"{b}/h"), "B still sees a file unlinked on A")
    with pytest.raises(FileNotFoundError):
        read(f"{b}/h")
    eventually(lambda: sorted(os.listdir(b)) == sorted(os.listdir(a)), "listings differ between the mounts")


def _hold(kind: str, path: str) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", HOLDER, kind, path], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    line = p.stdout.readline()
    if line.strip() != b"locked":
        p.kill()
        raise AssertionError(f"lock holder failed: {p.stderr.read().decode(errors='replace')}")
    return p


def _release(p: subprocess.Popen) -> None:
    p.stdin.close()
    p.wait(timeout=20)
    p.stdout.close()
    p.stderr.close()


def _try_lock(kind: str, path: str) -> int | None:
    """Try a non-blocking exclusive lock on path; None when it was granted (and released), else errno."""
    with open(path, "r+b") as f:
        try:
            if kind == "flock":
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            else:
                fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 0)
        except OSError as e:
            return e.errno
        return None


@pytest.mark.parametrize("kind", ["flock", "posix"])
@pytest.mark.parametrize("two_mounts", CLIENTS, indirect=True)
def test_lock_held_through_one_mount_blocks_the_other(two_mounts, kind):
    a, b = two_mounts
    write(f"{a}/lockfile", b"x" * 100)
    holder = _hold(kind, f"{a}/lockfile")
    try:
        got = _try_lock(kind, f"{b}/lockfile")
        expected = (errno.EWOULDBLOCK,) if kind == "flock" else (errno.EAGAIN, errno.EACCES)
        assert got in expected, f"{kind} lock through mount B: {got and errno.errorcode[got]}, expected a conflict"
    finally:
        _release(holder)
    # JuiceFS releases a lock when its holder closes the file; allow the release a moment to land.
    deadline = time.monotonic() + 5
    while (got := _try_lock(kind, f"{b}/lockfile")) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert got is None, f"{kind} lock still refused after the holder exited: {errno.errorcode[got]}"
