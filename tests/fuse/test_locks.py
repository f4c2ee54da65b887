"""File locks held in the metadata engine, through real mounts: a BSD flock or a POSIX fcntl lock
taken on one mount excludes the other mount of the same volume (and the reference `juicefs mount`),
blocking waiters wait, and locks go away when their holder exits.

Needs the patched pyfuse3 (scripts/build-pyfuse3.sh): with a stock pyfuse3 the kernel keeps the
locks per mount and the cross-mount tests fail.

Lock holders and waiters are child processes (a lock belongs to a process or an open file, and a
blocking one must not block pytest). No timing assertions: "blocked" means a waiter that writes a
marker file right after acquiring has not written it while the holder still holds the lock.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

KINDS = ["redis", "sqlite3"]
BLOCKED_FOR = 1.5  # how long a waiter is watched while the holder keeps its lock

# Takes a lock, prints "locked", keeps it until stdin closes, then exits WITHOUT unlocking (the
# kernel's release/flush at exit must drop it). argv: kind path [start len]
HOLDER = r"""
import fcntl, sys
kind, path = sys.argv[1], sys.argv[2]
f = open(path, "r+b")
if kind == "flock-ex":
    fcntl.flock(f, fcntl.LOCK_EX)
elif kind == "flock-sh":
    fcntl.flock(f, fcntl.LOCK_SH)
elif kind == "posix-ex":
    fcntl.lockf(f, fcntl.LOCK_EX, int(sys.argv[4]), int(sys.argv[3]))
elif kind == "posix-sh":
    fcntl.lockf(f, fcntl.LOCK_SH, int(sys.argv[4]), int(sys.argv[3]))
elif kind == "both":
    fcntl.flock(f, fcntl.LOCK_EX)
    fcntl.lockf(f, fcntl.LOCK_EX, 0, 0)
print("locked", flush=True)
sys.stdin.read()
"""

# Waits for an exclusive lock (blocking), then writes the marker. argv: kind path marker [start len]
WAITER = r"""
import fcntl, sys
kind, path, marker = sys.argv[1], sys.argv[2], sys.argv[3]
f = open(path, "r+b")
if kind == "flock-ex":
    fcntl.flock(f, fcntl.LOCK_EX)
else:
    fcntl.lockf(f, fcntl.LOCK_EX, int(sys.argv[5]), int(sys.argv[4]))
open(marker, "w").write("acquired")
"""


class Holder:
    """A child process holding a lock until release() (or kill())."""

    def __init__(self, kind: str, path: str | Path, *args: int) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", HOLDER, kind, str(path), *map(str, args)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        line = self.proc.stdout.readline()
        if line.strip() != "locked":
            self.proc.kill()
            _, err = self.proc.communicate(timeout=10)
            pytest.fail(f"lock holder ({kind}) failed: {err[-2000:]}")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def release(self) -> None:
        """Let it exit (closing its files drops the lock)."""
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


@pytest.fixture
def holders() -> Iterator[Callable[..., Holder]]:
    made: list[Holder] = []

    def make(kind: str, path: str | Path, *args: int) -> Holder:
        h = Holder(kind, path, *args)
        made.append(h)
        return h

    yield make
    for h in made:
        h.kill()


@pytest.fixture(params=KINDS)
def two_mounts(request, volume, pyjuicefs_mount):
    """Two pyjuicefs mounts (two processes, two sessions) of one volume."""
    url = volume(request.param)
    a = pyjuicefs_mount(url)
    b = pyjuicefs_mount(url)
    yield a, b
    b.umount()
    a.umount()


def shared_file(a, b, name: str = "locked") -> tuple[Path, Path]:
    """A file created on mount a, and its path on mount b once b sees it."""
    pa, pb = a / name, b / name
    pa.write_bytes(b"x" * 100)
    deadline = time.monotonic() + 5
    while not pb.exists():
        assert time.monotonic() < deadline, f"{pb} not visible on the second mount"
        time.sleep(0.1)
    return pa, pb


def try_flock(path: Path, op: int) -> int:
    """0 if `op | LOCK_NB` succeeds (then unlocks), else the errno."""
    with open(path, "r+b") as f:
        try:
            fcntl.flock(f, op | fcntl.LOCK_NB)
        except OSError as e:
            return e.errno
        fcntl.flock(f, fcntl.LOCK_UN)
        return 0


def try_lockf(path: Path, op: int, start: int, length: int) -> int:
    """0 if a non-blocking POSIX lock of [start, start+length) succeeds, else the errno."""
    with open(path, "r+b") as f:
        try:
            fcntl.lockf(f, op | fcntl.LOCK_NB, length, start)
        except OSError as e:
            return e.errno
        fcntl.lockf(f, fcntl.LOCK_UN, length, start)
        return 0


CONFLICT = (errno.EAGAIN, errno.EACCES)


def getlk(path: Path, ltype: int, start: int, length: int) -> tuple[int, int, int, int]:
    """F_GETLK: (l_type, l_start, l_len, l_pid) of a lock that would block ours."""
    req = struct.pack("hhqqi4x", ltype, os.SEEK_SET, start, length, 0)
    with open(path, "r+b") as f:
        out = fcntl.fcntl(f.fileno(), fcntl.F_GETLK, req)
    l_type, _whence, l_start, l_len, l_pid = struct.unpack("hhqqi4x", out)
    return l_type, l_start, l_len, l_pid


def assert_blocks_until_released(holder: Holder, waiter_kind: str, path: Path, tmp_path: Path,
                                 *args: int) -> None:
    """A blocking waiter on `path` does not get the lock while `holder` holds it, and gets it once
    the holder exits."""
    marker = tmp_path / f"acquired-{waiter_kind}-{time.monotonic_ns()}"
    waiter = subprocess.Popen([sys.executable, "-c", WAITER, waiter_kind, str(path), str(marker),
                               *map(str, args)], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + BLOCKED_FOR
        while time.monotonic() < deadline:
            assert not marker.exists(), "the waiter got the lock while the other mount held it"
            assert waiter.poll() is None, f"the waiter exited early: {waiter.stderr.read()[-2000:]}"
            time.sleep(0.1)
        holder.release()
        assert waiter.wait(timeout=60) == 0, waiter.stderr.read()[-2000:]
        assert marker.read_text() == "acquired"
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait(timeout=10)


# --- BSD flock ------------------------------------------------------------------------------------

def test_flock_excludes_across_mounts(two_mounts, holders, tmp_path):
    a, b = two_mounts
    pa, pb = shared_file(a, b)
    h = holders("flock-ex", pa)
    assert try_flock(pb, fcntl.LOCK_EX) == errno.EWOULDBLOCK
    assert try_flock(pb, fcntl.LOCK_SH) == errno.EWOULDBLOCK
    assert try_flock(pa, fcntl.LOCK_EX) == errno.EWOULDBLOCK  # another open file on the same mount
    assert_blocks_until_released(h, "flock-ex", pb, tmp_path)
    assert try_flock(pb, fcntl.LOCK_EX) == 0
    assert try_flock(pa, fcntl.LOCK_EX) == 0


def test_flock_shared_locks_coexist(two_mounts, holders):
    a, b = two_mounts
    pa, pb = shared_file(a, b)
    h = holders("flock-sh", pa)
    with open(pb, "r+b") as f:
        fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)  # shared + shared: fine
        assert try_flock(pa, fcntl.LOCK_EX) == errno.EWOULDBLOCK  # two shared holders now
        fcntl.flock(f, fcntl.LOCK_UN)
    assert try_flock(pb, fcntl.LOCK_EX) == errno.EWOULDBLOCK  # the holder's shared lock remains
    h.release()
    assert try_flock(pb, fcntl.LOCK_EX) == 0


def test_flock_upgrade_and_unlock(two_mounts):
    """One open file changes its lock: shared → exclusive → unlocked; the other mount follows."""
    a, b = two_mounts
    pa, pb = shared_file(a, b)
    with open(pa, "r+b") as f:
        fcntl.flock(f, fcntl.LOCK_SH)
        assert try_flock(pb, fcntl.LOCK_SH) == 0
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert try_flock(pb, fcntl.LOCK_SH) == errno.EWOULDBLOCK
        fcntl.flock(f, fcntl.LOCK_UN)
        assert try_flock(pb, fcntl.LOCK_EX) == 0


# --- POSIX record locks ---------------------------------------------------------------------------

def test_posix_ranges_across_mounts(two_mounts, holders, tmp_path):
    a, b = two_mounts
    pa, pb = shared_file(a, b)
    h = holders("posix-ex", pa, 0, 10)  # bytes [0, 10)
    assert try_lockf(pb, fcntl.LOCK_EX, 5, 10) in CONFLICT  # overlaps
    assert try_lockf(pb, fcntl.LOCK_SH, 9, 1) in CONFLICT
    assert try_lockf(pb, fcntl.LOCK_EX, 10, 10) == 0  # adjacent, not overlapping
    assert try_lockf(pb, fcntl.LOCK_EX, 100, 0) == 0  # [100, EOF and beyond)
    # F_GETLK from the other mount reports the holder's lock (its pid is only meaningful on the
    # holder's host: the kernel maps an unknown pid to 0).
    ltype, start, length, pid = getlk(pb, fcntl.F_WRLCK, 0, 0)
    assert (ltype, start, length) == (fcntl.F_WRLCK, 0, 10)
    assert pid in (h.pid, 0)
    assert getlk(pb, fcntl.F_WRLCK, 10, 5)[0] == fcntl.F_UNLCK
    assert_blocks_until_released(h, "posix", pb, tmp_path, 0, 0)
    assert try_lockf(pb, fcntl.LOCK_EX, 0, 0) == 0


def test_posix_shared_ranges_coexist(two_mounts, holders):
    a, b = two_mounts
    pa, pb = shared_file(a, b)
    h = holders("posix-sh", pa, 0, 0)  # the whole file, shared
    assert try_lockf(pb, fcntl.LOCK_SH, 0, 50) == 0
    assert try_lockf(pb, fcntl.LOCK_EX, 50, 1) in CONFLICT
    ltype, start, length, _pid = getlk(pb, fcntl.F_WRLCK, 20, 1)
    assert (ltype, start, length) == (fcntl.F_RDLCK, 0, 0)  # 0 = to the end of the file
    assert getlk(pb, fcntl.F_RDLCK, 20, 1)[0] == fcntl.F_UNLCK  # shared does not block shared
    h.release()
    assert try_lockf(pb, fcntl.LOCK_EX, 0, 0) == 0


def test_posix_lock_dropped_at_close(two_mounts):
    """close() of any descriptor of the file drops the process's POSIX locks on it (the kernel
    leaves that to FLUSH); the other mount can lock at once."""
    a, b = two_mounts
    pa, pb = shared_file(a, b)
    f = open(pa, "r+b")
    try:
        fcntl.lockf(f, fcntl.LOCK_EX, 0, 0)
        assert try_lockf(pb, fcntl.LOCK_EX, 0, 0) in CONFLICT
        with open(pa, "rb"):  # a second descriptor of the same file, closed at once
            pass
        assert try_lockf(pb, fcntl.LOCK_EX, 0, 0) == 0
    finally:
        f.close()


# --- release at exit -------------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["exit", "kill"])
def test_locks_released_when_holder_exits(two_mounts, holders, how):
    a, b = two_mounts
    pa, pb = shared_file(a, b)
    h = holders("both", pa)  # flock + a POSIX lock of the whole file
    assert try_flock(pb, fcntl.LOCK_EX) == errno.EWOULDBLOCK
    assert try_lockf(pb, fcntl.LOCK_EX, 0, 0) in CONFLICT
    h.release() if how == "exit" else h.kill()
    # FLUSH (POSIX locks) is sent as the files close; RELEASE (flock) may follow asynchronously.
    deadline = time.monotonic() + 10
    while try_flock(pb, fcntl.LOCK_EX) or try_lockf(pb, fcntl.LOCK_EX, 0, 0):
        assert time.monotonic() < deadline, "locks of an exited process were not released"
        time.sleep(0.1)


# --- interop with the reference client -------------------------------------------------------------

@pytest.mark.juicefs
@pytest.mark.parametrize("kind", ["flock", "posix"])
def test_locks_exclude_reference_juicefs(volume, pyjuicefs_mount, juicefs_mount, holders, tmp_path, kind):
    """Both clients keep locks in the metadata engine with the same encoding: a lock taken through
    `juicefs mount` excludes a pyjuicefs mount of the same volume, and the other way round."""
    url = volume("redis")
    py = pyjuicefs_mount(url)
    ref = juicefs_mount(url)
    try:
        for holder_mount, other in ((ref, py), (py, ref)):
            p_hold, p_other = shared_file(holder_mount, other, f"interop-{kind}-{holder_mount is py}")
            if kind == "flock":
                h = holders("flock-ex", p_hold)
                assert try_flock(p_other, fcntl.LOCK_EX) == errno.EWOULDBLOCK, f"held via {holder_mount.path}"
                assert_blocks_until_released(h, "flock-ex", p_other, tmp_path)
                assert try_flock(p_other, fcntl.LOCK_EX) == 0
            else:
                h = holders("posix-ex", p_hold, 0, 10)
                assert try_lockf(p_other, fcntl.LOCK_EX, 5, 1) in CONFLICT, f"held via {holder_mount.path}"
                assert try_lockf(p_other, fcntl.LOCK_EX, 10, 10) == 0
                assert getlk(p_other, fcntl.F_WRLCK, 0, 0)[:3] == (fcntl.F_WRLCK, 0, 10)
                assert_blocks_until_released(h, "posix", p_other, tmp_path, 0, 0)
                assert try_lockf(p_other, fcntl.LOCK_EX, 0, 0) == 0
    finally:
        ref.umount()
        py.umount()
