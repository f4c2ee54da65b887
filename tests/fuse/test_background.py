"""`pyjuicefs mount -d`: the command returns once the mount works (or says why it failed), a
daemon serves it, `pyjuicefs umount` and SIGTERM end it cleanly with the data flushed."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import time

import pytest
import services


def wait_gone(bm, mp: str, pids: list[int], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(p in bm.daemon_pids(mp) for p in pids):
            return
        time.sleep(0.05)
    pytest.fail(f"daemon {pids} still running {timeout}s after unmount:\n{bm.log()[-3000:]}")


@pytest.mark.parametrize("kind", ["sqlite3", "redis"])
def test_mount_d_is_live_on_return_and_umount_ends_it(kind, volume, background_mounts, tmp_path):
    bm = background_mounts
    url = volume(kind)
    mp = tmp_path / "mnt"
    mp.mkdir()
    p = bm.mount(url, mp)
    assert p.returncode == 0, p.stdout + p.stderr + bm.log()
    assert "is ready at" in p.stderr
    # Live right now: no waiting.
    assert bm.fstype(mp) == "fuse.pyjuicefs"
    assert os.stat(mp).st_ino == 1
    (mp / "hello.txt").write_text("background\n")
    assert (mp / "hello.txt").read_text() == "background\n"
    pids = bm.daemon_pids(str(mp))
    assert len(pids) == 1, pids
    assert os.getsid(pids[0]) == pids[0]  # detached: a session of its own

    u = bm.cli("umount", str(mp))
    assert u.returncode == 0, u.stdout + u.stderr
    assert not bm.is_mounted(mp)
    assert bm.daemon_pids(str(mp)) == []  # umount returned only after the daemon exited
    log = bm.log()
    assert "is ready at" in log and "is unmounted" in log, log

    # The data was flushed: a new mount sees it.
    p = bm.mount(url, mp)
    assert p.returncode == 0, p.stderr
    assert (mp / "hello.txt").read_text() == "background\n"
    assert bm.cli("umount", str(mp)).returncode == 0


def test_mount_d_relative_paths(volume, background_mounts, tmp_path, monkeypatch):
    """The daemon runs in /: a relative mount point and sqlite3 path still work."""
    bm = background_mounts
    url = volume("sqlite3")
    assert url.startswith("sqlite3:///")
    db = url[len("sqlite3://"):]
    monkeypatch.chdir(os.path.dirname(db))
    (tmp_path / "mnt").mkdir()
    rel_mp = os.path.relpath(tmp_path / "mnt")
    bm.watch(tmp_path / "mnt")
    p = bm.cli("mount", "-d", "sqlite3://" + os.path.basename(db), rel_mp, "--log", bm.log_path,
               "--cache-dir", bm.cache_dir)
    assert p.returncode == 0, p.stderr + bm.log()
    assert os.stat(tmp_path / "mnt").st_ino == 1
    assert bm.cli("umount", rel_mp).returncode == 0


def test_mount_d_unformatted_volume(new_meta_url, background_mounts, tmp_path):
    bm = background_mounts
    mp = tmp_path / "mnt"
    mp.mkdir()
    services.assert_one_error(bm.mount(new_meta_url("sqlite3"), mp), "not formatted")
    assert not bm.is_mounted(mp)
    assert bm.daemon_pids(str(mp)) == []


def test_mount_d_unformatted_redis_volume(new_meta_url, background_mounts, tmp_path):
    bm = background_mounts
    mp = tmp_path / "mnt"
    mp.mkdir()
    services.assert_one_error(bm.mount(new_meta_url("redis"), mp), "not formatted")
    assert not bm.is_mounted(mp)


def test_mount_d_missing_mountpoint(volume, background_mounts, tmp_path):
    bm = background_mounts
    mp = tmp_path / "nope"
    services.assert_one_error(bm.mount(volume("sqlite3"), mp), "does not exist")
    assert not mp.exists()
    assert "nope" not in bm.log()  # refused in the foreground: no daemon was started


def test_mount_d_already_mounted(volume, background_mounts, tmp_path):
    bm = background_mounts
    url = volume("sqlite3")
    mp = tmp_path / "mnt"
    mp.mkdir()
    assert bm.mount(url, mp).returncode == 0
    services.assert_one_error(bm.mount(url, mp), "already a mount point")
    assert len(bm.daemon_pids(str(mp))) == 1
    os.listdir(mp)
    assert bm.cli("umount", str(mp)).returncode == 0


def test_mount_d_unreachable_storage_keeps_secret(volume, background_mounts, tmp_path):
    bm = background_mounts
    mp = tmp_path / "mnt"
    mp.mkdir()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = bm.mount(volume("sqlite3"), mp, "--storage", "s3", "--bucket", f"http://127.0.0.1:{port}/b",
                 "--access-key", "k", "--secret-key", "secret-value-xyz", "--io-retries", "0")
    line = services.assert_one_error(p, "object storage")
    assert "secret-value-xyz" not in p.stdout + p.stderr + bm.log()
    assert line
    assert not bm.is_mounted(mp)
    assert bm.daemon_pids(str(mp)) == []


def test_mount_d_failure_inside_daemon_is_reported(volume, background_mounts, tmp_path):
    """A failure only the daemon can see (libfuse refuses an option) comes back as the one line."""
    bm = background_mounts
    mp = tmp_path / "mnt"
    mp.mkdir()
    line = services.assert_one_error(bm.mount(volume("sqlite3"), mp, "-o", "no_such_fuse_option_xyz"), "fuse")
    assert bm.log_path in line  # points at the log for libfuse's own lines
    assert "no_such_fuse_option_xyz" in bm.log()
    assert not bm.is_mounted(mp)
    assert bm.daemon_pids(str(mp)) == []


def test_mount_d_log_file_unwritable(volume, background_mounts, tmp_path):
    bm = background_mounts
    mp = tmp_path / "mnt"
    mp.mkdir()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    p = bm.cli("mount", "-d", volume("sqlite3"), str(mp), "--log", str(blocker / "sub" / "x.log"))
    services.assert_one_error(p, "log file")
    assert not bm.is_mounted(mp)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_to_daemon_flushes_and_unmounts(sig, volume, background_mounts, tmp_path):
    bm = background_mounts
    url = volume("sqlite3")
    mp = tmp_path / "mnt"
    mp.mkdir()
    assert bm.mount(url, mp).returncode == 0, bm.log()
    data = os.urandom(3 << 20)
    with open(mp / "big", "wb") as f:
        f.write(data)
    (pid,) = bm.daemon_pids(str(mp))
    os.kill(pid, sig)
    wait_gone(bm, str(mp), [pid])
    assert not bm.is_mounted(mp)
    assert "Received signal" in bm.log()
    p = bm.mount(url, mp)
    assert p.returncode == 0, p.stderr
    assert hashlib.sha256((mp / "big").read_bytes()).digest() == hashlib.sha256(data).digest()
    assert bm.cli("umount", str(mp)).returncode == 0
