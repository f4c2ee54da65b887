"""Mounting at boot: `--update-fstab` writes (and updates) the fstab line and installs
mount.pyjuicefs; the helper mounts from mount(8)-style arguments; mount(8) itself uses it.

The fstab and the helper directory are temp paths (PYJUICEFS_FSTAB, PYJUICEFS_SBIN); the real
/etc/fstab is never touched. Only the mount(8) test puts a symlink into /sbin, and only when
/sbin/mount.pyjuicefs does not exist yet (it removes it afterwards)."""

from __future__ import annotations

import os
import shutil
import sys

import pytest

HELPER = "mount.pyjuicefs"


@pytest.fixture
def boot_env(tmp_path):
    """(env, fstab path, sbin dir) with a pre-existing fstab holding unrelated lines."""
    fstab = tmp_path / "fstab"
    fstab.write_text("# /etc/fstab: static file system information.\nUUID=1234 / ext4 errors=remount-ro 0 1\n")
    sbin = tmp_path / "sbin"
    sbin.mkdir()
    return {"PYJUICEFS_FSTAB": str(fstab), "PYJUICEFS_SBIN": str(sbin)}, fstab, sbin


def entries(fstab) -> list[list[str]]:
    return [ln.split() for ln in fstab.read_text().splitlines() if ln.split()[2:3] == ["pyjuicefs"]]


def test_update_fstab_writes_then_updates(volume, background_mounts, boot_env, tmp_path):
    bm = background_mounts
    env, fstab, sbin = boot_env
    url = volume("sqlite3")
    mp = tmp_path / "mnt"
    mp.mkdir()
    p = bm.mount(url, mp, "--update-fstab", "--max-uploads", "5", "--enable-xattr", "-o", "allow_other",
                 "--attr-cache", "2s", env=env)
    assert p.returncode == 0, p.stderr + bm.log()
    assert bm.is_mounted(mp)
    lines = fstab.read_text().splitlines()
    assert lines[:2] == ["# /etc/fstab: static file system information.", "UUID=1234 / ext4 errors=remount-ro 0 1"]
    # JuiceFS's format: two spaces between fields; options sorted, -d/--update-fstab left out.
    assert lines[2] == (f"{url}  {mp}  pyjuicefs  _netdev,nofail,allow_other,attr-cache=2s,"
                        f"cache-dir={bm.cache_dir},enable-xattr,log={bm.log_path},max-uploads=5  0 0")
    helper = sbin / HELPER
    assert helper.is_symlink() and os.access(helper, os.X_OK)
    assert bm.cli("umount", str(mp)).returncode == 0

    # Again with other options: the line is replaced, not duplicated; the helper is left alone.
    target = os.readlink(helper)
    p = bm.mount(url, mp, "--update-fstab", "--max-uploads", "7", env=env)
    assert p.returncode == 0, p.stderr
    assert len(fstab.read_text().splitlines()) == 3
    assert entries(fstab) == [[url, str(mp), "pyjuicefs",
                               f"_netdev,nofail,cache-dir={bm.cache_dir},log={bm.log_path},max-uploads=7", "0", "0"]]
    assert os.readlink(helper) == target
    assert bm.cli("umount", str(mp)).returncode == 0


def test_update_fstab_leaves_secrets_out(volume, background_mounts, boot_env, tmp_path):
    bm = background_mounts
    env, fstab, _ = boot_env
    mp = tmp_path / "mnt"
    mp.mkdir()
    # The overrides point at the volume's own file bucket, so the mount works.
    url = volume("sqlite3")
    p = bm.mount(url, mp, "--update-fstab", "--access-key", "ak", "--secret-key", "topsecret-123", env=env)
    assert p.returncode == 0, p.stderr + bm.log()
    assert "topsecret-123" not in fstab.read_text()
    assert "access-key=ak" in fstab.read_text()
    assert "secret-key" in p.stderr  # a warning says why it is missing
    assert bm.cli("umount", str(mp)).returncode == 0


def test_foreground_mount_updates_fstab(volume, pyjuicefs_mount, boot_env):
    env, fstab, sbin = boot_env
    url = volume("sqlite3")
    m = pyjuicefs_mount(url, None, "--update-fstab", "--read-only", env=env)
    ((spec, mp, typ, opts, freq, passno),) = entries(fstab)
    assert (spec, mp, typ, freq, passno) == (url, m.path, "pyjuicefs", "0", "0")
    first, second, cache, ro = opts.split(",")  # the fixture adds a temp --cache-dir
    assert (first, second, ro) == ("_netdev", "nofail", "read-only") and cache.startswith("cache-dir=/")
    assert (sbin / HELPER).exists()


def helper_cmd() -> list[str]:
    """The installed console script (CI installs the package), else the module."""
    exe = os.path.join(os.path.dirname(sys.executable), HELPER)
    return [exe] if os.access(exe, os.X_OK) else [sys.executable, "-m", "pyjuicefs.cli.mount_helper"]


def test_helper_called_as_mount_would(volume, background_mounts, tmp_path):
    """mount(8) runs `mount.pyjuicefs SPEC DIR -o OPTS`: generic options dropped, flag options
    become flags, the rest FUSE options; it mounts in the background."""
    bm = background_mounts
    url = volume("sqlite3")
    mp = tmp_path / "mnt"
    mp.mkdir()
    bm.watch(mp)
    opts = (f"_netdev,nofail,rw,defaults,noauto,user,x-systemd.automount,comment=x,enable-xattr,"
            f"max-uploads=3,attrcacheto=2,log={bm.log_path},cache-dir={bm.cache_dir},allow_other")
    p = bm.cli(url, str(mp), "-o", opts, argv0=helper_cmd())
    assert p.returncode == 0, p.stdout + p.stderr + bm.log()
    assert bm.fstype(mp) == "fuse.pyjuicefs"
    (pid,) = bm.daemon_pids(str(mp))
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        argv = f.read().split(b"\0")
    assert b"--enable-xattr" in argv and b"--max-uploads=3" in argv and b"--attr-cache=2" in argv
    assert b"allow_other" in argv and not any(b"_netdev" in a or b"x-systemd" in a for a in argv)
    os.setxattr(mp, "user.k", b"v")  # --enable-xattr reached the daemon
    assert os.getxattr(mp, "user.k") == b"v"
    assert bm.cli("umount", str(mp)).returncode == 0


def test_helper_ro_and_fake(volume, background_mounts, tmp_path):
    bm = background_mounts
    url = volume("sqlite3")
    mp = tmp_path / "mnt"
    mp.mkdir()
    bm.watch(mp)
    # -f (fake): nothing is mounted
    p = bm.cli(url, str(mp), "-f", "-o", "rw", argv0=helper_cmd())
    assert p.returncode == 0, p.stderr
    assert not bm.is_mounted(mp)
    # ro, as `mount -r` passes it: the mount is read-only
    p = bm.cli(url, str(mp), "-o", f"ro,log={bm.log_path},cache-dir={bm.cache_dir}", argv0=helper_cmd())
    assert p.returncode == 0, p.stderr + bm.log()
    with pytest.raises(OSError) as e:
        (mp / "x").write_text("no")
    assert e.value.errno == 30  # EROFS
    assert bm.cli("umount", str(mp)).returncode == 0


def test_helper_bad_arguments(background_mounts, tmp_path):
    p = background_mounts.cli("only-one-arg", argv0=helper_cmd())
    assert p.returncode != 0 and "usage: mount.pyjuicefs" in p.stderr
    p = background_mounts.cli("sqlite3:///x.db", str(tmp_path), "-o", "max-uploads", argv0=helper_cmd())
    assert p.returncode != 0 and "requires a value" in p.stderr


def test_mount8_uses_the_helper(volume, background_mounts, boot_env, tmp_path):
    """`mount -t pyjuicefs META MNT -o …` and `mount MNT` from an fstab line go through
    /sbin/mount.pyjuicefs, as at boot."""
    bm = background_mounts
    env, fstab, _ = boot_env
    if shutil.which("mount") is None:
        pytest.fail("mount(8) is not installed (util-linux)")
    url = volume("sqlite3")
    mp = tmp_path / "mnt"
    mp.mkdir()
    bm.watch(mp)
    sbin_helper = "/sbin/" + HELPER
    created = False
    if not os.path.lexists(sbin_helper):
        from pyjuicefs.cli.fstab import install_mount_helper

        created = install_mount_helper("/sbin") is not None
    try:
        p = bm.cli("-t", "pyjuicefs", url, str(mp), "-o",
                   f"_netdev,max-uploads=3,log={bm.log_path},cache-dir={bm.cache_dir}", argv0=["mount"])
        assert p.returncode == 0, p.stdout + p.stderr + bm.log()
        assert bm.fstype(mp) == "fuse.pyjuicefs"
        (mp / "f").write_text("via mount(8)")
        assert bm.cli("umount", str(mp)).returncode == 0

        # The line --update-fstab writes is one mount(8) can use.
        p = bm.mount(url, mp, "--update-fstab", "--enable-xattr", env=env)
        assert p.returncode == 0, p.stderr
        assert bm.cli("umount", str(mp)).returncode == 0
        p = bm.cli("--fstab", str(fstab), str(mp), argv0=["mount"])
        assert p.returncode == 0, p.stdout + p.stderr + bm.log()
        assert (mp / "f").read_text() == "via mount(8)"
        os.setxattr(mp / "f", "user.k", b"v")
        assert bm.cli("umount", str(mp)).returncode == 0
    finally:
        if created:
            os.unlink(sbin_helper)


def test_update_fstab_cache_flags_absolute(volume, background_mounts, boot_env, tmp_path, monkeypatch):
    """The brief's example: cache and writeback flags, a relative --cache-dir written absolute."""
    bm = background_mounts
    env, fstab, _ = boot_env
    url = volume("sqlite3")
    mp = tmp_path / "mnt"
    mp.mkdir()
    monkeypatch.chdir(tmp_path)
    p = bm.mount(url, mp, "--update-fstab", "--cache-dir", "jfscache", "--cache-size", "102400", "--writeback",
                 env=env)
    assert p.returncode == 0, p.stderr + bm.log()
    assert entries(fstab) == [[url, str(mp), "pyjuicefs",
                               f"_netdev,nofail,cache-dir={tmp_path}/jfscache,cache-size=102400,"
                               f"log={bm.log_path},writeback", "0", "0"]]
    assert bm.cli("umount", "--flush", str(mp)).returncode == 0
