"""The Redis layout against the reference JuiceFS 1.4 binary, both ways.

1. A volume formatted by `juicefs format` reads back through our engine, and the key set after a
   format is exactly what JuiceFS writes.
2. A tree loaded by `juicefs load` (deterministic: every time is given) and the same records
   written through our engine's Txn produce the same keys with the same bytes.
3. A volume written only through our engine is accepted by `juicefs status`, `dump` and `fsck`.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from pyjuicefs.meta import codec, new_engine
from pyjuicefs.meta.redis import RedisEngine
from pyjuicefs.meta.redis_url import parse_redis_url
from pyjuicefs.meta.types import (
    TRASH_INODE, TYPE_DIRECTORY, TYPE_FILE, TYPE_SYMLINK, Attr, Slice,
)

pytestmark = [pytest.mark.services, pytest.mark.juicefs]

T = 1795607551  # fixed timestamps make the reference's output reproducible
UUID = "11111111-2222-3333-4444-555555555555"


def _run(juicefs: str, *args: str) -> subprocess.CompletedProcess:
    p = subprocess.run([juicefs, *args], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, f"juicefs {' '.join(args)} failed:\n{p.stdout}\n{p.stderr}"
    return p


def _raw(url: str) -> redis.Redis:
    a = parse_redis_url(url)
    return redis.Redis(host=a.host, port=a.port, db=a.db)


def _dump_value(r: redis.Redis, key: bytes) -> tuple[str, object]:
    t = r.type(key).decode()
    if t == "string":
        return t, r.get(key)
    if t == "hash":
        return t, r.hgetall(key)
    if t == "list":
        return t, r.lrange(key, 0, -1)
    if t == "set":
        return t, r.smembers(key)
    if t == "zset":
        return t, r.zrange(key, 0, -1, withscores=True)
    raise AssertionError(f"unexpected type {t} of {key!r}")


def _snapshot(r: redis.Redis) -> dict[bytes, tuple[str, object]]:
    return {k: _dump_value(r, k) for k in sorted(r.scan_iter(count=1000))}


@pytest.fixture
def eng_url(new_meta_url) -> Iterator[str]:
    yield new_meta_url("redis")


# --- 1. format by the reference, read by us ------------------------------------------------------


def test_reference_format_reads_back(juicefs_bin: str, eng_url: str, tmp_path: Path) -> None:
    _run(juicefs_bin, "format", "--storage", "file", "--bucket", f"{tmp_path}/", eng_url, "vol")
    r = _raw(eng_url)
    assert sorted(r.keys()) == [b"i1", f"i{TRASH_INODE}".encode(), b"setting"]

    e = new_engine(eng_url)
    fmt = json.loads(e.load_setting())
    assert fmt["Name"] == "vol" and fmt["Storage"] == "file" and fmt["MetaVersion"] == 1
    root, trash = e.txn(lambda tx: tx.get_attrs([1, TRASH_INODE]), readonly=True)
    assert (root.typ, root.mode, root.nlink, root.length, root.parent) == (TYPE_DIRECTORY, 0o777, 2, 4096, 1)
    assert (trash.typ, trash.mode, trash.parent) == (TYPE_DIRECTORY, 0o555, 1)
    assert root.atime == root.mtime == root.ctime > 1_600_000_000
    # JuiceFS stores a one-byte zero slack after the 71-byte record (72 bytes); so do we
    assert len(r.get("i1")) == 72 and codec.encode_attr(root) == r.get("i1")
    # no counter exists yet: the next inode is 1 in SQL terms (root is skipped by allocation)
    assert e.get_counter("nextInode") == 1 and e.get_counter("usedSpace") == 0
    assert e.txn(lambda tx: tx.list_entries(1)) == []
    e.close()


# --- 2. the same tree written by `juicefs load` and by us -------------------------------------------


def _attr(ino: int, typ: str, mode: int, *, nlink: int = 1, length: int = 0, uid: int = 0,
          ns: int = 0) -> dict:
    return {"inode": ino, "type": typ, "mode": mode, "uid": uid, "gid": uid, "atime": T, "mtime": T,
            "ctime": T, "atimensec": ns, "mtimensec": ns, "ctimensec": ns, "nlink": nlink, "length": length}


def _tree_dump(bucket: str) -> dict:
    f = {"attr": _attr(3, "regular", 0o644, nlink=2, length=3, ns=7),
         "chunks": [{"index": 0, "slices": [{"id": 1, "size": 3, "len": 3}]}]}
    big = {"attr": _attr(5, "regular", 0o600, length=(1 << 26) + 5, uid=1000),
           "chunks": [{"index": 0, "slices": [{"id": 2, "size": 4096, "len": 4096},
                                              {"pos": 4096, "id": 3, "size": 100, "off": 10, "len": 50}]},
                      {"index": 1, "slices": [{"id": 4, "size": 5, "len": 5}]}]}
    d = {"attr": _attr(2, "directory", 0o755, nlink=2, ns=9),
         "xattrs": [{"name": "user.k", "value": "val"}],
         "entries": {"f": f, "h": f, "big": big,
                     "s": {"attr": _attr(4, "symlink", 0o777), "symlink": "f"}}}
    return {
        "Setting": {"Name": "vol", "UUID": UUID, "Storage": "file", "Bucket": bucket, "BlockSize": 4096,
                    "Compression": "none", "TrashDays": 1, "MetaVersion": 1,
                    "MinClientVersion": "1.1.0-A", "DirStats": True, "EnableACL": False},
        "Counters": {"usedSpace": 0, "usedInodes": 0, "nextInodes": 6, "nextChunk": 5,
                     "nextSession": 0, "nextTrash": 0},
        "Sustained": [], "DelFiles": [],
        "FSTree": {"attr": _attr(1, "directory", 0o777, nlink=3), "entries": {"d": d}},
        "Trash": {"attr": _attr(TRASH_INODE, "directory", 0o555, nlink=2), "entries": {}},
    }


# d's children: f and h count once each (length 3, 4 KiB), big, and the symlink (4 KiB)
_D2_STAT = (3 + 3 + (1 << 26) + 5, 4096 + 4096 + ((1 << 26) + 4096) + 4096, 4)


def _write_tree_with_engine(e: RedisEngine, setting: bytes) -> None:
    """What `juicefs load` stores for _tree_dump, written through the engine's contract."""
    e.save_setting(setting)

    def a(typ: int, mode: int, parent: int, *, nlink: int = 1, length: int = 0, uid: int = 0,
          ns: int = 0) -> Attr:
        return Attr(typ=typ, mode=mode, uid=uid, gid=uid, atime=T, mtime=T, ctime=T, atimensec=ns,
                    mtimensec=ns, ctimensec=ns, nlink=nlink, length=length, parent=parent)

    def fn(tx) -> None:
        tx.set_attr(1, a(TYPE_DIRECTORY, 0o777, 1, nlink=3, length=4096))
        tx.set_attr(TRASH_INODE, a(TYPE_DIRECTORY, 0o555, 1, nlink=2, length=4096))
        tx.set_entry(1, b"d", TYPE_DIRECTORY, 2)
        tx.set_attr(2, a(TYPE_DIRECTORY, 0o755, 1, nlink=2, length=4096, ns=9))
        tx.set_xattr(2, b"user.k", b"val")
        for name, typ, ino in ((b"f", TYPE_FILE, 3), (b"h", TYPE_FILE, 3), (b"big", TYPE_FILE, 5),
                               (b"s", TYPE_SYMLINK, 4)):
            tx.set_entry(2, name, typ, ino)
        tx.set_attr(3, a(TYPE_FILE, 0o644, 0, nlink=2, length=3, ns=7))  # hard link: parent 0
        tx.incr_parent(3, 2, 2)
        tx.append_slice(3, 0, Slice(0, 1, 3, 0, 3))
        tx.set_attr(4, a(TYPE_SYMLINK, 0o777, 2, length=1))
        tx.set_symlink(4, b"f")
        tx.set_attr(5, a(TYPE_FILE, 0o600, 2, length=(1 << 26) + 5, uid=1000))
        tx.set_chunk(5, 0, [Slice(0, 2, 4096, 0, 4096), Slice(4096, 3, 100, 10, 50)])
        tx.append_slice(5, 1, Slice(0, 4, 5, 0, 5))
        # the four nodes below the root: d, f (once, though linked twice), s and big
        tx.incr_counter("usedSpace", 3 * 4096 + (1 << 26) + 4096)
        tx.incr_counter("totalInodes", 4)

    e.txn(fn)
    e.incr_counter("nextInode", 5)
    e.incr_counter("nextChunk", 4)
    e.incr_counter("nextSession", 0)
    e.incr_counter("nextTrash", 0)
    e.update_dir_stats({1: (0, 4096, 1), 2: _D2_STAT})
    e.update_dir_stats({TRASH_INODE: (0, 0, 0)})  # a new (empty) directory is recorded as zeros


def test_same_bytes_as_reference_load(juicefs_bin: str, new_meta_url, tmp_path: Path) -> None:
    ref_url, our_url = new_meta_url("redis"), new_meta_url("redis")
    dump = tmp_path / "tree.json"
    dump.write_text(json.dumps(_tree_dump(f"{tmp_path}/bucket/"), indent=1))
    _run(juicefs_bin, "load", ref_url, str(dump))
    ref = _snapshot(_raw(ref_url))

    e = new_engine(our_url)
    _write_tree_with_engine(e, ref[b"setting"][1])
    ours = _snapshot(_raw(our_url))
    assert set(ours) == set(ref), f"only ours: {set(ours) - set(ref)}; only ref: {set(ref) - set(ours)}"
    for key, (typ, value) in ref.items():
        assert ours[key] == (typ, value), key

    # and our engine reads the reference's records back
    r = new_engine(ref_url)
    got = r.txn(lambda tx: (tx.list_entries(2), tx.get_chunk(5, 0), tx.get_parents(3), tx.get_symlink(4),
                            tx.list_xattrs(2)), readonly=True)
    assert got == ([(b"big", TYPE_FILE, 5), (b"f", TYPE_FILE, 3), (b"h", TYPE_FILE, 3), (b"s", TYPE_SYMLINK, 4)],
                   [Slice(0, 2, 4096, 0, 4096), Slice(4096, 3, 100, 10, 50)], {2: 2}, b"f", {b"user.k": b"val"})
    assert r.get_counter("nextInode") == 6 and r.get_counter("nextChunk") == 5
    assert r.get_dir_stat(2) == _D2_STAT
    e.close()
    r.close()


# --- 3. a volume written by us, used by the reference ---------------------------------------------------


def test_reference_accepts_our_volume(juicefs_bin: str, eng_url: str, tmp_path: Path) -> None:
    bucket = tmp_path / "bucket"
    setting = dict(_tree_dump(f"{bucket}/")["Setting"])
    # Go's json.MarshalIndent(format, "", "") layout, as JuiceFS stores it
    e = new_engine(eng_url)
    _write_tree_with_engine(e, json.dumps(setting, indent=0).encode())
    # the data of every slice, as the file store names blocks: <vol>/chunks/<id/1e6>/<id/1e3>/<id>_<indx>_<size>
    for id_, data in ((1, b"hi\n"), (2, b"a" * 4096), (3, b"b" * 100), (4, b"c" * 5)):
        obj = bucket / "vol" / "chunks" / str(id_ // 1_000_000) / str(id_ // 1000) / f"{id_}_0_{len(data)}"
        obj.parent.mkdir(parents=True, exist_ok=True)
        obj.write_bytes(data)

    status = json.loads(_run(juicefs_bin, "status", eng_url).stdout)
    assert status["Setting"]["Name"] == "vol" and status["Setting"]["UUID"] == UUID

    out = tmp_path / "dump.json"
    _run(juicefs_bin, "dump", eng_url, str(out))
    d = json.loads(out.read_text())
    tree = d["FSTree"]
    assert tree["attr"]["inode"] == 1 and tree["attr"]["mode"] == 0o777
    sub = tree["entries"]["d"]
    assert sub["attr"]["mode"] == 0o755 and sub["xattrs"] == [{"name": "user.k", "value": "val"}]
    assert sorted(sub["entries"]) == ["big", "f", "h", "s"]
    assert sub["entries"]["s"]["symlink"] == "f"
    assert sub["entries"]["f"]["attr"]["nlink"] == 2
    assert sub["entries"]["big"]["chunks"][1]["slices"] == [{"id": 4, "size": 5, "len": 5}]
    assert d["Counters"]["nextInodes"] == 6 and d["Counters"]["nextChunk"] == 5

    fsck = _run(juicefs_bin, "fsck", eng_url)  # exits non-zero on a lost object or broken file
    assert "Found 4 blocks" in fsck.stderr and "Used by 4 slices" in fsck.stderr, fsck.stderr
    e.close()
