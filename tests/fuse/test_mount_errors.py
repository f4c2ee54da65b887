"""`pyjuicefs mount` refuses, before mounting anything, with one clear line and a non-zero exit."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import services


def mount_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pyjuicefs", "mount", *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def test_missing_mountpoint(volume, tmp_path):
    url = volume("sqlite3")
    mp = tmp_path / "nope"
    services.assert_one_error(mount_cli(url, str(mp)), str(mp), "does not exist")
    assert not mp.exists()


def test_mountpoint_not_a_directory(volume, tmp_path):
    url = volume("sqlite3")
    f = tmp_path / "file"
    f.write_text("x")
    services.assert_one_error(mount_cli(url, str(f)), "not a directory")


def test_mountpoint_already_mounted(volume, pyjuicefs_mount):
    url = volume("sqlite3")
    m = pyjuicefs_mount(url)
    services.assert_one_error(mount_cli(url, m.path), "already a mount point")
    assert m.mounted and m.proc.poll() is None  # the first mount is untouched
    os.listdir(m.path)


def test_unformatted_volume(new_meta_url, tmp_path):
    mp = tmp_path / "mnt"
    mp.mkdir()
    services.assert_one_error(mount_cli(new_meta_url("sqlite3"), str(mp)), "not formatted")
    assert not os.path.ismount(mp)


def test_unformatted_redis_volume(new_meta_url, tmp_path):
    mp = tmp_path / "mnt"
    mp.mkdir()
    services.assert_one_error(mount_cli(new_meta_url("redis"), str(mp)), "not formatted")


def test_unreachable_metadata_engine(tmp_path):
    mp = tmp_path / "mnt"
    mp.mkdir()
    services.assert_one_error(mount_cli(f"redis://127.0.0.1:{services.free_port()}/1", str(mp), "--io-retries", "0", timeout=120))
    assert not os.path.ismount(mp)


def test_unreachable_storage(volume, tmp_path):
    url = volume("sqlite3")
    mp = tmp_path / "mnt"
    mp.mkdir()
    bucket = f"http://127.0.0.1:{services.free_port()}/nobucket"
    line = services.assert_one_error(mount_cli(url, str(mp), "--storage", "s3", "--bucket", bucket, "--access-key", "k",
                                      "--secret-key", "secret-value-xyz"))
    assert "secret-value-xyz" not in line
    assert not os.path.ismount(mp)


@pytest.mark.parametrize("flag,value", [("--attr-cache", "soon"), ("--buffer-size", "lots"),
                                        ("--max-uploads", "-1")])
def test_bad_option_values(volume, tmp_path, flag, value):
    mp = tmp_path / "mnt"
    mp.mkdir()
    services.assert_one_error(mount_cli(volume("sqlite3"), str(mp), flag, value), flag.lstrip("-"))


def test_fuse_device_missing(monkeypatch):
    """/dev/fuse is only ever looked at with os.path.exists, so its absence is simulated at that
    call (a test must never touch /dev)."""
    from pyjuicefs.cli import mount
    from pyjuicefs.errors import UserError

    real_exists = os.path.exists
    monkeypatch.setattr(mount.os.path, "exists", lambda p: False if p == "/dev/fuse" else real_exists(p))
    with pytest.raises(UserError, match="/dev/fuse does not exist"):
        mount.check_fuse_device()
