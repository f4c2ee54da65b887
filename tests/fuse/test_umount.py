"""`pyjuicefs umount`: refuses a busy mount point (which keeps working), --force detaches it,
a non-mount is a clear error, and it returns only once the mount process has exited."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import services


def hold_open(path) -> subprocess.Popen:
    """A process keeping `path` open for reading until killed (it prints 'ready' first)."""
    code = "import sys,time; f=open(sys.argv[1]); print('ready', flush=True); time.sleep(600)"
    p = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True,
                         start_new_session=True)
    assert p.stdout.readline().strip() == "ready"
    return p


def stop(p: subprocess.Popen) -> None:
    if p.poll() is None:
        p.kill()
    p.wait(timeout=30)


@pytest.fixture
def mounted(volume, background_mounts, tmp_path):
    """A sqlite3 volume mounted with -d at tmp_path/mnt."""
    def make(kind: str = "sqlite3"):
        url = volume(kind)
        mp = tmp_path / "mnt"
        mp.mkdir()
        p = background_mounts.mount(url, mp)
        assert p.returncode == 0, p.stderr + background_mounts.log()
        return url, mp
    return make


@pytest.mark.parametrize("kind", ["sqlite3", "redis"])
def test_busy_umount_fails_and_mount_keeps_working(kind, mounted, background_mounts):
    bm = background_mounts
    url, mp = mounted(kind)
    (mp / "f").write_text("data")
    holder = hold_open(mp / "f")
    try:
        p = bm.cli("umount", str(mp))
        services.assert_one_error(p, "Device or resource busy", str(mp))
        assert bm.fstype(mp) == "fuse.pyjuicefs"
        assert len(bm.daemon_pids(str(mp))) == 1
        # still fully usable
        (mp / "g").write_text("more")
        assert {"f", "g"} <= set(os.listdir(mp))
        assert (mp / "f").read_text() == "data"
    finally:
        stop(holder)
    assert bm.cli("umount", str(mp)).returncode == 0
    assert not bm.is_mounted(mp)
    assert bm.daemon_pids(str(mp)) == []


def test_busy_by_working_directory(mounted, background_mounts):
    bm = background_mounts
    _, mp = mounted()
    (mp / "d").mkdir()
    p = subprocess.Popen(["sleep", "600"], cwd=mp / "d", start_new_session=True)
    try:
        services.assert_one_error(bm.cli("umount", str(mp)), "busy")
        assert bm.is_mounted(mp)
    finally:
        stop(p)
    assert bm.cli("umount", str(mp)).returncode == 0


def test_force_umount_of_busy_mount(mounted, background_mounts):
    bm = background_mounts
    _, mp = mounted()
    (mp / "f").write_text("data")
    holder = hold_open(mp / "f")
    try:
        (pid,) = bm.daemon_pids(str(mp))
        p = bm.cli("umount", "--force", str(mp))
        assert p.returncode == 0, p.stderr
        assert not bm.is_mounted(mp)  # detached at once
        assert "pid" in p.stderr  # says the daemon lives on until the files are closed
    finally:
        stop(holder)
    deadline = time.monotonic() + 30
    while pid in bm.daemon_pids(str(mp)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert pid not in bm.daemon_pids(str(mp))  # the last close ended the connection


def test_force_umount_of_idle_mount_waits_for_daemon(mounted, background_mounts):
    bm = background_mounts
    _, mp = mounted()
    p = bm.cli("umount", "-f", str(mp))
    assert p.returncode == 0, p.stderr
    assert not bm.is_mounted(mp)
    assert bm.daemon_pids(str(mp)) == []


def test_umount_not_a_mount_point(background_mounts, tmp_path):
    services.assert_one_error(background_mounts.cli("umount", str(tmp_path)), "not a mount point")
    services.assert_one_error(background_mounts.cli("umount", str(tmp_path / "missing")), "not a mount point")


def test_umount_refuses_non_fuse_mount(background_mounts, tmp_path):
    # A tmpfs of our own, never a system mount: a regression here must not unmount /proc.
    mp = tmp_path / "tmpfs"
    mp.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "pyjuicefs-test", str(mp)], check=True)
    try:
        services.assert_one_error(background_mounts.cli("umount", str(mp)), "not a FUSE mount")
        assert os.path.ismount(mp)
    finally:
        subprocess.run(["umount", str(mp)], check=False)


def test_umount_flush_without_writeback(mounted, background_mounts):
    """--flush on a mount with nothing staged returns right away and unmounts."""
    bm = background_mounts
    _, mp = mounted()
    (mp / "f").write_bytes(b"x" * 100000)
    start = time.monotonic()
    p = bm.cli("umount", "--flush", str(mp))
    assert p.returncode == 0, p.stderr
    assert time.monotonic() - start < 30
    assert not bm.is_mounted(mp)
    assert bm.daemon_pids(str(mp)) == []


def test_umount_waits_for_foreground_mount_process(volume, pyjuicefs_mount, background_mounts):
    """A foreground `pyjuicefs mount` has exited (data flushed, session closed) when umount returns."""
    m = pyjuicefs_mount(volume("sqlite3"))
    with open(m / "f", "wb") as f:
        f.write(os.urandom(1 << 20))
    p = background_mounts.cli("umount", m.path)
    assert p.returncode == 0, p.stderr
    assert m.proc.poll() == 0, m.log()
    assert "is unmounted" in m.log()


@pytest.mark.juicefs
def test_umount_flush_waits_for_staged_blocks(volume, juicefs_mount, background_mounts, tmp_path):
    """--flush against a writeback mount (the reference client's: the interface is JuiceFS's
    `juicefs_staging_blocks` in .stats / .config's rawstaging dir): it returns only once the
    staged block is in the bucket."""
    url = volume("sqlite3")
    m = juicefs_mount(url, None, "--writeback", "--upload-delay", "3s")
    with open(m / "f", "wb") as f:
        f.write(os.urandom(1 << 20))
    chunks = lambda: [p for p in tmp_path.glob("bucket-*/*/chunks/**/*") if p.is_file()]  # noqa: E731
    assert chunks() == []  # staged, not uploaded yet
    p = background_mounts.cli("umount", "--flush", m.path)
    assert p.returncode == 0, p.stderr
    assert len(chunks()) == 1
    assert not m.mounted


def test_umount_flush_waits_for_own_writeback(volume, background_mounts, tmp_path):
    """--flush against a pyjuicefs writeback mount: `.stats` reports the staged block, and umount
    returns only once it is uploaded."""
    bm = background_mounts
    url = volume("sqlite3")
    mp = tmp_path / "mnt"
    mp.mkdir()
    p = bm.mount(url, mp, "--writeback", "--upload-delay", "3s", "--cache-dir", str(tmp_path / "cache"))
    assert p.returncode == 0, p.stderr + bm.log()
    with open(mp / "f", "wb") as f:
        f.write(os.urandom(1 << 20))
    stats = (mp / ".stats").read_text()
    assert any(ln.split()[1:] == ["1"] for ln in stats.splitlines() if "staging_blocks" in ln), stats
    chunks = lambda: [p for p in tmp_path.glob("bucket-*/*/chunks/**/*") if p.is_file()]  # noqa: E731
    assert chunks() == []
    p = bm.cli("umount", "--flush", str(mp))
    assert p.returncode == 0, p.stderr
    assert len(chunks()) == 1
    assert not bm.is_mounted(mp) and bm.daemon_pids(str(mp)) == []
