"""etcd volumes shared with the reference JuiceFS 1.4.2 (the oracle), on a real etcd:

* `pyjuicefs format etcd://...` → `juicefs status` and `juicefs fsck` accept the volume;
* `juicefs format` + a tree written through `juicefs mount` → our Meta reads the same names, attrs,
  symlinks, xattrs and slices; it then creates and renames entries, and a new reference mount
  reads those changes and `juicefs fsck` finds nothing wrong.
* golden records captured from the reference binary are loaded into etcd as they are and read.

(Mount-level interop with `pyjuicefs mount` on etcd belongs with the FUSE mount's own tests.)
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import services

from pyjuicefs.meta import new_engine
from pyjuicefs.meta.base import Meta, MetaConfig
from pyjuicefs.meta.base_common import ROOT_CTX
from pyjuicefs.meta.types import CHUNK_SIZE, TYPE_DIRECTORY, TYPE_FILE, TYPE_SYMLINK

GOLDEN = Path(__file__).parent / "data" / "golden" / "etcd.json"
ROOT = 1


def juicefs(bin_: str, *argv: object, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([bin_, *map(str, argv)], capture_output=True, text=True, timeout=timeout)


def fsck_warnings(bin_: str, url: str, *args: str) -> list[str]:
    """Problems `juicefs fsck` reports (the file store's "storage tier: not supported" is none)."""
    p = juicefs(bin_, "fsck", url, *args)
    assert p.returncode == 0, p.stderr
    return services.juicefs_findings(p.stderr)


def fsck_clean(bin_: str, url: str) -> None:
    """Objects and slices agree, and so do directory statistics. A fresh volume has no usage stat
    for / (the reference format writes none either, and its fsck of / then panics on etcd), so the
    tree check runs after a --repair that only creates what is missing."""
    assert fsck_warnings(bin_, url) == []
    fsck_warnings(bin_, url, "--path", "/", "-r", "--sync-dir-stat", "--repair")
    assert fsck_warnings(bin_, url, "--path", "/", "-r", "--sync-dir-stat") == []


@contextmanager
def reference_mount(bin_: str, url: str, *extra: str):
    """`juicefs mount` in the foreground as our child, on a fresh dir of our own; always unmounted."""
    mnt = tempfile.mkdtemp(prefix="pyjfs-etcd-mnt-")
    log = open(os.path.join(mnt + ".log"), "w+")
    proc = subprocess.Popen([bin_, "mount", url, mnt, "--no-usage-report", "--enable-xattr", *extra],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not (os.path.ismount(mnt) and os.stat(mnt).st_ino == 1):
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                pytest.fail(f"juicefs mount did not come up:\n{log.read()[-3000:]}", pytrace=False)
            time.sleep(0.05)
        yield Path(mnt)
    finally:
        if os.path.ismount(mnt):
            subprocess.run([bin_, "umount", mnt], capture_output=True, timeout=60)
        if os.path.ismount(mnt):
            subprocess.run(["fusermount3", "-u", "-z", mnt], capture_output=True, timeout=30)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        os.unlink(log.name)
        os.rmdir(mnt)


@pytest.fixture
def meta_factory():
    metas: list[Meta] = []

    def make(url: str) -> Meta:
        m = Meta(new_engine(url), MetaConfig(dir_stat_flush_period=0))
        metas.append(m)
        m.load()
        return m

    yield make
    for m in metas:
        m.engine.close()


def test_reference_accepts_a_volume_we_format(new_meta_url, juicefs_bin, pyjfs, tmp_path):
    url = new_meta_url("etcd")
    rc, _, err = pyjfs("format", "--bucket", tmp_path / "bucket", "--trash-days", "2", url, "pyvol")
    assert rc == 0, err
    p = juicefs(juicefs_bin, "status", url)
    assert p.returncode == 0, p.stderr
    setting = json.loads(p.stdout)["Setting"]
    assert (setting["Name"], setting["TrashDays"], setting["Storage"]) == ("pyvol", 2, "file")
    rc, ours, err = pyjfs("status", url)
    assert rc == 0, err
    assert json.loads(ours)["Setting"] == setting
    fsck_clean(juicefs_bin, url)


def test_trees_written_by_either_client_are_read_by_the_other(new_meta_url, juicefs_bin, meta_factory, tmp_path):
    url = new_meta_url("etcd")
    p = juicefs(juicefs_bin, "format", "--bucket", f"{tmp_path}/bucket/", url, "refvol")
    assert p.returncode == 0, p.stderr
    big = os.urandom(CHUNK_SIZE + 100_000)  # two chunks
    with reference_mount(juicefs_bin, url) as mnt:
        (mnt / "d" / "sub").mkdir(parents=True)
        (mnt / "d" / "f").write_bytes(b"hello etcd\n")
        (mnt / "big").write_bytes(big)
        os.symlink("d/f", mnt / "ln")
        os.link(mnt / "d" / "f", mnt / "d" / "hard")
        os.setxattr(mnt / "d" / "f", "user.k", b"v1")
        os.chmod(mnt / "d" / "f", 0o640)
        expect = {name: os.lstat(mnt / name) for name in ("d", "d/sub", "d/f", "d/hard", "big", "ln")}

    m = meta_factory(url)
    assert m.get_format().Name == "refvol"
    root = {e.name: e for e in m.readdir(ROOT_CTX, ROOT)}
    assert {b"d", b"big", b"ln"} <= set(root)
    d, dattr = m.lookup(ROOT_CTX, ROOT, "d")
    assert dattr.typ == TYPE_DIRECTORY and d == expect["d"].st_ino
    assert {e.name for e in m.readdir(ROOT_CTX, d)} >= {b"sub", b"f", b"hard"}
    f, fattr = m.lookup(ROOT_CTX, d, "f")
    st = expect["d/f"]
    assert (f, fattr.typ, fattr.mode & 0o7777, fattr.length, fattr.nlink) == (st.st_ino, TYPE_FILE, 0o640, 11, 2)
    assert (fattr.mtime, fattr.uid, fattr.gid) == (int(st.st_mtime), st.st_uid, st.st_gid)
    assert m.lookup(ROOT_CTX, d, "hard")[0] == f
    assert m.getxattr(ROOT_CTX, f, "user.k") == b"v1"
    ln, lattr = m.lookup(ROOT_CTX, ROOT, "ln")
    assert lattr.typ == TYPE_SYMLINK and m.readlink(ROOT_CTX, ln) == b"d/f"
    b_ino, battr = m.lookup(ROOT_CTX, ROOT, "big")
    assert battr.length == len(big)
    first, second = m.read(b_ino, 0), m.read(b_ino, 1)
    assert sum(s.len for s in first if s.id) == CHUNK_SIZE and sum(s.len for s in second if s.id) == 100_000

    # our changes, through our Meta API
    m.new_session()
    n, _ = m.mkdir(ROOT_CTX, d, "made-by-py", 0o755)
    e, _ = m.create(ROOT_CTX, n, "empty", 0o600)
    m.close(ROOT_CTX, e)
    m.symlink(ROOT_CTX, n, "to-big", "big-moved")
    m.rename(ROOT_CTX, d, "f", n, "f-renamed")
    m.rename(ROOT_CTX, ROOT, "big", n, "big-moved")
    m.setxattr(ROOT_CTX, e, "user.by", b"py", 0)
    m.close_session()

    with reference_mount(juicefs_bin, url) as mnt:
        nd = mnt / "d" / "made-by-py"
        assert sorted(os.listdir(nd)) == ["big-moved", "empty", "f-renamed", "to-big"]
        assert (nd / "f-renamed").read_bytes() == b"hello etcd\n"
        assert (nd / "to-big").read_bytes() == big
        assert os.stat(nd / "empty").st_size == 0 and os.stat(nd / "empty").st_mode & 0o777 == 0o600
        assert os.getxattr(nd / "empty", "user.by") == b"py"
        assert not (mnt / "d" / "f").exists() and not (mnt / "big").exists()
        assert os.stat(mnt / "d" / "hard").st_nlink == 2
        (nd / "written-by-ref").write_bytes(b"again")
    fsck_clean(juicefs_bin, url)
    m2 = meta_factory(url)
    w, wattr = m2.lookup(ROOT_CTX, n, "written-by-ref")
    assert wattr.length == 5


def test_golden_records_from_the_reference_are_read(etcd_server, meta_factory):
    """Records captured from juicefs 1.4.2 (prefix /gold) are loaded verbatim under a new prefix."""
    gold = json.loads(GOLDEN.read_text())
    prefix = f"/golden{os.getpid()}{int(time.time() * 1000) % 100000}"
    new = prefix.encode() + b"\xfd"
    kvs = [(bytes.fromhex(k), bytes.fromhex(v)) for k, v in gold["after_tier"]]
    assert all(k.startswith(b"/gold\xfd") for k, _ in kvs)
    try:
        for k, v in kvs:
            etcd_server.call("/v3/kv/put", {"key": base64.b64encode(new + k[6:]).decode(),
                                            "value": base64.b64encode(v).decode()})
        m = meta_factory(etcd_server.url(prefix[1:]))
        assert m.get_format().Name == "gold"
        checked = 0
        for path, st in gold["stat"].items():
            if path.startswith(".") or path == "/" or not isinstance(st, dict) or "mode" not in st:
                continue
            ino = ROOT
            for part in path.split("/"):
                ino, attr = m.lookup(ROOT_CTX, ino, part)
            assert ino == st["ino"], path
            assert (attr.mode & 0o7777, attr.uid, attr.gid) == (st["mode"] & 0o7777, st["uid"], st["gid"]), path
            if attr.typ == TYPE_FILE:
                assert (attr.length, attr.nlink) == (st["size"], st["nlink"]), path
            checked += 1
        assert checked >= 5
        f, fattr = m.lookup(ROOT_CTX, m.lookup(ROOT_CTX, ROOT, "d")[0], "f")
        assert fattr.mtime * 10**9 + fattr.mtimensec == gold["stat"]["d/f"]["mtime_ns"]
        assert sum(s.len for s in m.read(f, 0) if s.id) == gold["stat"]["d/f"]["size"]
        assert m.getxattr(ROOT_CTX, f, "user.k") == b"val"
        d = m.lookup(ROOT_CTX, ROOT, "d")[0]
        for e in m.readdir(ROOT_CTX, d, plus=True):
            assert e.name in (b".", b"..") or (e.attr is not None and e.attr.typ == e.typ)
    finally:
        etcd_server.delete_prefix(prefix)
