"""Golden byte vectors: records the reference juicefs binary wrote decode with our codecs to the
values the binary itself reports (stat through its mount, `juicefs dump`), and our encoders
reproduce the exact bytes. Fixtures: tests/compat/data/golden/ (made by capture_golden.py).
"""

from __future__ import annotations

import hashlib
import json
import stat
import struct
from functools import cache
from pathlib import Path
from typing import Any

import lz4.block
import pytest
import zstandard

from pyjuicefs.format import Format
from pyjuicefs.meta import codec
from pyjuicefs.meta.redis_keys import owner_field, parse_owner_field
from pyjuicefs.meta.types import TRASH_INODE, SessionInfo, Slice, type_from_stat

GOLDEN = Path(__file__).parent / "data" / "golden"
ETCD_PREFIX = b"/gold\xfd"  # etcd://host/gold: the URL path, then 0xFD, before every key


@cache
def load(name: str) -> dict[str, Any]:
    return json.loads((GOLDEN / f"{name}.json").read_text())


def rget(records: dict[str, Any], key: str) -> Any:
    """Value of a Redis key in a capture: bytes for strings; {bytes: bytes} for hashes; list of
    bytes for lists."""
    item = records[key.encode().hex()]
    v = item["value"]
    if item["type"] == "string":
        return bytes.fromhex(v)
    if item["type"] == "hash":
        return {bytes.fromhex(k): bytes.fromhex(x) for k, x in v.items()}
    if item["type"] in ("list", "set"):
        return [bytes.fromhex(x) for x in v]
    return v


def redis_attrs(records: dict[str, Any]) -> dict[int, bytes]:
    out = {}
    for k, item in records.items():
        key = bytes.fromhex(k).decode()
        if key[0] == "i" and key[1:].isdigit():
            out[int(key[1:])] = bytes.fromhex(item["value"])
    return out


def etcd_attrs(kvs: list[list[str]]) -> dict[int, bytes]:
    """Attribute values by inode: keys ETCD_PREFIX + A<inode LE u64>I."""
    out = {}
    n = len(ETCD_PREFIX)
    for k, v in kvs:
        key = bytes.fromhex(k)
        if key.startswith(ETCD_PREFIX + b"A") and len(key) == n + 10 and key.endswith(b"I"):
            out[struct.unpack("<Q", key[n + 1:n + 9])[0]] = bytes.fromhex(v)
    return out


def dumped_by_inode(tree: dict[str, Any]) -> dict[int, dict[str, Any]]:
    out = {}
    stack = [tree]
    while stack:
        e = stack.pop()
        out[e["attr"]["inode"]] = e
        stack.extend((e.get("entries") or {}).values())
    return out


def stat_nodes(cap: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p: v for p, v in cap["stat"].items() if isinstance(v, dict) and "mode" in v}


def check_attr_matches_stat(a, st: dict[str, Any]) -> None:
    assert a.smode == st["mode"]
    assert (a.uid, a.gid, a.nlink, a.rdev) == (st["uid"], st["gid"], st["nlink"], st["rdev"])
    assert a.length == st["size"]
    assert a.mtime * 10**9 + a.mtimensec == st["mtime_ns"]
    assert a.ctime * 10**9 + a.ctimensec == st["ctime_ns"]
    assert a.atime * 10**9 + a.atimensec == st["atime_ns"]


# --- attributes ----------------------------------------------------------------------------------

def _all_attr_records() -> list[tuple[str, bytes]]:
    r = load("redis")
    out = [(f"redis:{snap}:i{ino}", raw) for snap in ("after_format", "mounted", "after_tier")
           for ino, raw in redis_attrs(r[snap]).items()]
    out += [(f"redis-acl:i{ino}", raw) for ino, raw in redis_attrs(r["acl"]["records"]).items()]
    out += [(f"etcd:{snap}:{ino}", raw) for snap in ("mounted", "after_tier")
            for ino, raw in etcd_attrs(load("etcd")[snap]).items()]
    return out


@pytest.mark.parametrize("name,raw", _all_attr_records(), ids=lambda x: x if isinstance(x, str) else "")
def test_attr_encoder_reproduces_every_captured_record(name: str, raw: bytes) -> None:
    assert codec.encode_attr(codec.decode_attr(raw)) == raw


def test_attr_size_and_trailing_zero_byte() -> None:
    # 71 bytes of fields + one zero byte the binary always stores (its buffer is one byte larger).
    assert {len(raw) for _, raw in _all_attr_records()} == {72, 73, 80}
    assert all(raw[-1] == 0 for _, raw in _all_attr_records())


@pytest.mark.parametrize("engine", ["redis", "etcd"])
def test_attr_decodes_to_what_the_mount_reports(engine: str) -> None:
    cap = load(engine)
    attrs = redis_attrs(cap["mounted"]) if engine == "redis" else etcd_attrs(cap["mounted"])
    nodes = stat_nodes(cap)
    assert len(nodes) == 10
    for path, st in nodes.items():
        check_attr_matches_stat(codec.decode_attr(attrs[st["ino"]]), st)


def test_attr_fields_of_the_captured_tree() -> None:
    cap = load("redis")
    attrs = {ino: codec.decode_attr(raw) for ino, raw in redis_attrs(cap["mounted"]).items()}
    st = cap["stat"]
    f = attrs[st["d/f"]["ino"]]
    assert (f.typ, f.mode, f.nlink, f.length) == (1, 0o640, 2, 5 << 20)
    assert f.parent == 0  # hard-linked: parents are in p<ino>
    assert (f.atime, f.atimensec) == divmod(cap["inputs"]["atime_ns"], 10**9)
    assert (f.mtime, f.mtimensec) == divmod(cap["inputs"]["mtime_ns"], 10**9)
    assert rget(cap["mounted"], f"p{st['d/f']['ino']}") == {str(st["d"]["ino"]).encode(): b"2"}
    d = attrs[st["d"]["ino"]]
    assert (d.typ, d.length, d.parent) == (2, 4096, 1)
    sl = attrs[st["sl"]["ino"]]
    assert (sl.typ, sl.mode, sl.length, sl.parent) == (3, 0o777, 3, 1)
    assert rget(cap["mounted"], f"s{st['sl']['ino']}") == cap["stat"]["sl"]["target"].encode()
    chr_ = attrs[st["d/chr"]["ino"]]
    assert (chr_.typ, chr_.rdev) == (6, (1 << 8) | 7)
    assert attrs[st["d/fifo"]["ino"]].typ == 4
    root = attrs[1]
    assert (root.typ, root.parent) == (2, 1)
    trash = attrs[TRASH_INODE]
    assert (trash.typ, trash.mode, trash.parent) == (2, 0o555, 1)


def test_attr_with_tier() -> None:
    cap = load("redis")
    ino = cap["stat"]["d/tiered"]["ino"]
    raw = rget(cap["after_tier"], f"i{ino}")
    a = codec.decode_attr(raw)
    assert (a.tier, a.access_acl, a.default_acl, len(raw)) == (1, 0, 0, 73)
    assert codec.encode_attr(a) == raw


def test_attr_with_acl_ids_and_acl_rule() -> None:
    acl = load("redis")["acl"]
    f = codec.decode_attr(rget(acl["records"], f"i{acl['stat']['f']['ino']}"))
    dd = codec.decode_attr(rget(acl["records"], f"i{acl['stat']['dd']['ino']}"))
    assert (f.access_acl, f.default_acl) == (1, 0)
    assert (dd.access_acl, dd.default_acl) == (0, 1)  # same rule, shared id
    assert f.smode == acl["stat"]["f"]["mode"]
    rules = rget(acl["records"], "acl")
    raw = rules[b"1"]
    # Input entries: user::rw, user:1000:r, group::r, mask::rw, other::-
    assert codec.decode_acl_rule(raw) == (6, 4, 6, 0, [(1000, 4)], [])
    assert codec.encode_acl_rule(6, 4, 6, 0, [(1000, 4)], []) == raw
    assert rget(acl["records"], "aclMaxId") == b"1"


# --- entries, slices, delayed slices --------------------------------------------------------------

def test_entry_values() -> None:
    cap = load("redis")
    st = cap["stat"]
    for parent, names in ((1, {"d": "d", "sl": "sl"}),
                          (st["d"]["ino"], {"f": "d/f", "hl": "d/hl", "fifo": "d/fifo",
                                            "chr": "d/chr", "g": "d/g", "sparse": "d/sparse",
                                            "cl": "d/cl"})):
        ents = rget(cap["mounted"], f"d{parent}")
        assert {k.decode() for k in ents} == set(names)
        for name, path in names.items():
            raw = ents[name.encode()]
            typ, ino = codec.decode_entry(raw)
            assert (typ, ino) == (type_from_stat(st[path]["mode"]), st[path]["ino"])
            assert codec.encode_entry(typ, ino) == raw


def test_trash_entries() -> None:
    cap = load("redis")
    sub, item = cap["stat"][".trash"]
    ents = rget(cap["mounted"], f"d{TRASH_INODE}")
    typ, sub_ino = codec.decode_entry(ents[sub.encode()])
    assert (typ, sub_ino) == (2, TRASH_INODE + 1)
    # A deleted file is kept as "<parent>-<inode>-<name>" in an hourly trash directory.
    inner = rget(cap["mounted"], f"d{sub_ino}")
    name = item.split("/", 1)[1].encode()
    typ, ino = codec.decode_entry(inner[name])
    assert name == f"{cap['stat']['d']['ino']}-{ino}-del".encode()
    assert codec.decode_attr(rget(cap["mounted"], f"i{ino}")).parent == sub_ino


def test_slice_records_match_dump() -> None:
    cap = load("redis")
    dumped = dumped_by_inode(cap["dump"]["FSTree"])
    seen = 0
    for k, item in cap["mounted"].items():
        key = bytes.fromhex(k).decode()
        if not (key.startswith("c") and "_" in key):
            continue
        ino, indx = map(int, key[1:].split("_"))
        raws = rget(cap["mounted"], key)
        slices = [s for raw in raws for s in codec.decode_slices(raw)]
        assert [codec.encode_slice(s) for s in slices] == raws
        chunks = {c["index"]: c["slices"] for c in dumped.get(ino, {}).get("chunks", [])}
        if ino in dumped:
            want = [Slice(d.get("pos", 0), d["id"], d["size"], d.get("off", 0), d["len"])
                    for d in chunks[indx]]
            assert slices == want
            seen += 1
    assert seen >= 5
    f = codec.decode_slices(rget(cap["mounted"], f"c{cap['stat']['d/f']['ino']}_0")[0])
    assert f == [Slice(0, f[0].id, 5 << 20, 0, 5 << 20)]
    sparse = codec.decode_slices(rget(cap["mounted"], f"c{cap['stat']['d/sparse']['ino']}_1")[0])
    assert sparse[0].pos == (70 << 20) - (64 << 20)


def test_delayed_slices_after_compaction() -> None:
    cap = load("redis")
    (field, raw), = rget(cap["mounted"], "delSlices").items()
    new_id, ts = map(int, field.decode().split("_"))
    g = codec.decode_slices(rget(cap["mounted"], f"c{cap['stat']['d/g']['ino']}_0")[0])
    assert g[0].id == new_id  # keyed by the slice that replaced them
    old = codec.decode_delayed_slices(raw)
    assert [size for _, size in old] == [3000, 1000, 500]  # the three writes of d/g
    assert b"".join(codec.encode_delayed_slice(i, s) for i, s in old) == raw
    sql = load("sqlite")["mounted"]["tables"]["jfs_delslices"]["rows"][0]
    assert [s for _, s in codec.decode_delayed_slices(bytes.fromhex(sql["slices"]))] == [3000, 1000, 500]


def test_slice_refs_of_a_clone() -> None:
    cap = load("redis")
    f = codec.decode_slices(rget(cap["mounted"], f"c{cap['stat']['d/f']['ino']}_0")[0])[0]
    # Redis keeps refs - 1 (absent == 1 ref); SQL keeps every slice with its real count.
    assert rget(cap["mounted"], "sliceRef") == {f"k{f.id}_{f.size}".encode(): b"1"}
    rows = {r["chunkid"]: r for r in load("sqlite")["mounted"]["tables"]["jfs_chunk_ref"]["rows"]}
    assert rows[f.id]["refs"] == 2 and rows[f.id]["size"] == f.size


# --- locks -----------------------------------------------------------------------------------------

def test_posix_lock_records_redis() -> None:
    cap = load("redis")
    pid = cap["stat"]["lock_holder_pid"]
    (field, raw), = rget(cap["mounted"], f"lockp{cap['stat']['d/f']['ino']}").items()
    sid, owner = parse_owner_field(field)
    assert owner_field(sid, owner).encode() == field
    (member, _expire), = rget(cap["mounted"], "allSessions")
    assert sid == int(bytes.fromhex(member))
    recs = codec.decode_plock_records(raw)
    # fcntl write lock on [0,100) and read lock on [200,250); end is inclusive
    assert recs == [(codec.F_WRLCK, pid, 0, 99), (codec.F_RDLCK, pid, 200, 249)]
    assert codec.encode_plock_records(recs) == raw
    locked = {bytes(x) for x in rget(cap["mounted"], f"locked{sid}")}
    assert locked == {f"lockp{cap['stat']['d/f']['ino']}".encode(), f"lockf{cap['stat']['d/g']['ino']}".encode()}


def test_flock_redis() -> None:
    cap = load("redis")
    (field, ltype), = rget(cap["mounted"], f"lockf{cap['stat']['d/g']['ino']}").items()
    sid, owner = parse_owner_field(field)
    assert ltype == b"R" and owner_field(sid, owner).encode() == field


def test_locks_sql() -> None:
    cap = load("sqlite")
    t = cap["mounted"]["tables"]
    pid = cap["stat"]["lock_holder_pid"]
    (pl,) = t["jfs_plock"]["rows"]
    assert codec.decode_plock_records(bytes.fromhex(pl["records"])) == [
        (codec.F_WRLCK, pid, 0, 99), (codec.F_RDLCK, pid, 200, 249)]
    assert -(1 << 63) <= pl["owner"] < 1 << 63  # the uint64 owner in a signed BIGINT
    (fl,) = t["jfs_flock"]["rows"]
    assert chr(fl["ltype"]) == "R"


def test_locks_tkv() -> None:
    from pyjuicefs.meta import tkv

    cap = load("etcd")
    kv = {bytes.fromhex(k): bytes.fromhex(v) for k, v in cap["mounted"]}
    pid = cap["stat"]["lock_holder_pid"]
    pkey = ETCD_PREFIX + tkv.plock_key(cap["stat"]["d/f"]["ino"])
    plocks = tkv.decode_plocks(kv[pkey])
    ((sid, owner), recs), = plocks.items()
    assert codec.decode_plock_records(recs) == [(codec.F_WRLCK, pid, 0, 99), (codec.F_RDLCK, pid, 200, 249)]
    assert tkv.encode_plocks(plocks) == kv[pkey]
    fkey = ETCD_PREFIX + tkv.flock_key(cap["stat"]["d/g"]["ino"])
    flocks = tkv.decode_flocks(kv[fkey])
    assert list(flocks.values()) == ["R"] and list(flocks)[0][0] == sid
    assert tkv.encode_flocks(flocks) == kv[fkey]


# --- SQL and TKV value encodings -------------------------------------------------------------------

def test_sql_node_rows() -> None:
    from pyjuicefs.meta.sql import time_from_db, time_to_db

    cap = load("sqlite")
    rows = {r["inode"]: r for r in cap["mounted"]["tables"]["jfs_node"]["rows"]}
    for path, st in stat_nodes(cap).items():
        r = rows[st["ino"]]
        assert stat.S_IFMT(st["mode"]) | r["mode"] == st["mode"]
        assert type_from_stat(st["mode"]) == r["type"]
        for t in ("atime", "mtime", "ctime"):
            # microseconds + the remaining nanoseconds (0-999)
            sec, nsec = time_from_db(r[t], r[t + "nsec"])
            assert sec * 10**9 + nsec == st[t + "_ns"], (path, t)
            assert time_to_db(sec, nsec) == (r[t], r[t + "nsec"])
            assert 0 <= r[t + "nsec"] < 1000
        assert (r["nlink"], r["length"], r["rdev"]) == (st["nlink"], st["size"], st["rdev"])
    assert rows[cap["stat"]["d/f"]["ino"]]["parent"] == 0


def test_sql_edges_chunks_symlink_xattr() -> None:
    cap = load("sqlite")
    t = cap["mounted"]["tables"]
    st = cap["stat"]
    edges = {(r["parent"], bytes.fromhex(r["name"])): r for r in t["jfs_edge"]["rows"]}
    assert edges[(1, b"sl")]["inode"] == st["sl"]["ino"] and edges[(1, b"sl")]["type"] == 3
    assert edges[(st["d"]["ino"], b"hl")]["inode"] == st["d/f"]["ino"]
    dumped = dumped_by_inode(cap["dump"]["FSTree"])
    for r in t["jfs_chunk"]["rows"]:
        raw = bytes.fromhex(r["slices"])
        slices = codec.decode_slices(raw)
        assert b"".join(map(codec.encode_slice, slices)) == raw
        if r["inode"] in dumped:
            want = {c["index"]: c["slices"] for c in dumped[r["inode"]]["chunks"]}[r["indx"]]
            assert [s.id for s in slices] == [d["id"] for d in want]
    (sym,) = t["jfs_symlink"]["rows"]
    assert bytes.fromhex(sym["target"]).decode() == st["sl"]["target"]
    xa = {(r["inode"], r["name"]): bytes.fromhex(r["value"]) for r in t["jfs_xattr"]["rows"]}
    assert xa[(st["d/f"]["ino"], "user.k")] == b"val"


def test_tkv_keys_and_values() -> None:
    from pyjuicefs.meta import tkv

    cap = load("etcd")
    kv = {bytes.fromhex(k): bytes.fromhex(v) for k, v in cap["mounted"]}
    p = ETCD_PREFIX
    st = cap["stat"]
    d, f, sl, sparse = (st[x]["ino"] for x in ("d", "d/f", "sl", "d/sparse"))
    assert codec.decode_entry(kv[p + tkv.entry_key(1, b"d")]) == (2, d)
    assert codec.decode_attr(kv[p + tkv.inode_key(f)]).length == 5 << 20
    assert kv[p + tkv.sym_key(sl)] == b"d/f"
    assert kv[p + tkv.xattr_key(f, b"user.k")] == b"val"
    assert tkv.parse_counter(kv[p + tkv.parent_key(f, d)]) == 2
    assert codec.decode_slices(kv[p + tkv.chunk_key(sparse, 1)])[0].pos == 6 << 20
    assert tkv.parse_counter(kv[p + tkv.counter_key("nextInode")]) == cap["dump"]["Counters"]["nextInodes"]
    s0 = codec.decode_slices(kv[p + tkv.chunk_key(f, 0)])[0]
    assert tkv.parse_counter(kv[p + tkv.slice_key(s0.id, s0.size)]) == 1  # refs - 1 (a clone)
    # Delayed slices: L<deleted ts BE u64><new slice id BE u64>
    (lkey,) = [k for k in kv if k.startswith(p + b"L")]
    assert [s for _, s in codec.decode_delayed_slices(kv[lkey])] == [3000, 1000, 500]
    stat_raw = kv[p + tkv.dir_stat_key(d)]  # dir stats: length, space, inodes (i64 BE)
    assert codec.encode_dir_stat(*codec.decode_dir_stat(stat_raw)) == stat_raw
    (sid,) = [int.from_bytes(k[len(p) + 2:], "big") for k in kv if k.startswith(p + b"SI")]
    assert p + tkv.session_info_key(sid) in kv and p + tkv.session_key(sid) in kv
    assert kv[p + tkv.SETTING_KEY].startswith(b'{\n"Name": "gold"')
    # every attribute key of the volume is one our key builder produces
    built = {p + tkv.inode_key(i) for i in etcd_attrs(cap["mounted"])}
    assert {k for k in kv if k.startswith(p + b"A") and len(k) == len(p) + 10 and k.endswith(b"I")} == built
    sub = kv[p + tkv.entry_key(TRASH_INODE, cap["stat"][".trash"][0].encode())]
    assert codec.decode_entry(sub) == (2, TRASH_INODE + 1)


def test_redis_counters_and_dir_stats() -> None:
    cap = load("redis")
    m = cap["mounted"]
    # Redis keeps the last id handed out; dump reports the next one.
    assert int(rget(m, "nextinode")) + 1 == cap["dump"]["Counters"]["nextInodes"]
    assert int(rget(m, "nextchunk")) + 1 == cap["dump"]["Counters"]["nextChunk"]
    for h in ("dirUsedSpace", "dirUsedInodes", "dirDataLength"):
        assert all(k.isdigit() and v.lstrip(b"-").isdigit() for k, v in rget(m, h).items())


# --- session info ---------------------------------------------------------------------------------

def test_session_info_json() -> None:
    raw = next(iter(rget(load("redis")["mounted"], "sessionInfos").values()))
    info = json.loads(raw)
    assert list(info) == [f for f in SessionInfo.__dataclass_fields__]
    assert info["Version"].startswith("1.4.")
    sql = load("sqlite")["mounted"]["tables"]["jfs_session2"]["rows"][0]
    assert list(json.loads(bytes.fromhex(sql["info"]))) == list(info)


# --- volume settings --------------------------------------------------------------------------------

def _settings() -> list[tuple[str, bytes]]:
    r, s, e, o, s3 = (load(n) for n in ("redis", "sqlite", "etcd", "objects", "s3_setting"))
    out = [("redis", rget(r["after_format"], "setting")), ("redis-tier", rget(r["after_tier"], "setting")),
           ("sqlite", s["after_format"]["tables"]["jfs_setting"]["rows"][0]["value"].encode())]
    out += [(f"etcd-{i}", bytes.fromhex(v)) for i, (k, v) in enumerate(e["after_format"])
            if bytes.fromhex(k).endswith(b"\xfdsetting")]
    out += [(f"objects-{n}", v["setting"].encode()) for n, v in o.items() if n != "_meta"]
    out += [(n, v["setting_rows"][0]["value"].encode()) for n, v in s3.items() if n != "_meta"]
    return out


@pytest.mark.parametrize("name,raw", _settings(), ids=lambda x: x if isinstance(x, str) else "")
def test_setting_json_round_trips_byte_for_byte(name: str, raw: bytes) -> None:
    assert Format.from_json(raw).to_json() == raw


def test_setting_fields() -> None:
    o = load("objects")
    lz4hp = Format.from_json(o["lz4hp"]["setting"])
    assert (lz4hp.Compression, lz4hp.HashPrefix) == ("lz4", True)
    assert Format.from_json(o["shards"]["setting"]).Shards == 3
    tier = Format.from_json(rget(load("redis")["after_tier"], "setting"))
    assert tier.MinClientVersion == "1.4.0-A" and tier.Tiers["1"]["StorageClass"] == "COLD"
    tier.check_version()  # we claim 1.4.2


def test_secret_key_decrypts() -> None:
    s3 = load("s3_setting")
    f = Format.from_json(s3["gold-s3"]["setting_rows"][0]["value"])
    assert f.KeyEncrypted and f.SecretKey != s3["gold-s3"]["secret_key"]
    f.decrypt()
    assert (f.AccessKey, f.SecretKey, f.KeyEncrypted) == ("a", "b", False)
    enc = s3["gold-s3enc"]
    g = Format.from_json(enc["setting_rows"][0]["value"])
    g.decrypt()
    assert g.SecretKey == "b" and g.EncryptKey == enc["encrypt_key_pem"]
    # and ours is read back by the same rule (random nonce: compare after decrypting)
    g.encrypt()
    h = Format.from_json(g.to_json())
    h.decrypt()
    assert h.EncryptKey == enc["encrypt_key_pem"]


# --- objects ----------------------------------------------------------------------------------------

def test_block_object_names() -> None:
    from pyjuicefs.object.names import block_key, slice_keys

    o = load("objects")
    for vol, hp in (("zstd", False), ("lz4hp", True), ("shards", False)):
        (chunk,) = [c for c in o[vol]["chunks"] if c["inode"] == o[vol]["inode"]]
        (s,) = codec.decode_slices(bytes.fromhex(chunk["slices"]))
        want = sorted(x["key"] for x in o[vol]["objects"] if "plain_size" in x)
        got = sorted(f"{vol}/{k}" for k in slice_keys(s.id, s.size, 4 << 20, hp))
        assert got == want
    assert block_key(1, 0, 4 << 20, True) == "chunks/01/0/1_0_4194304"


def test_shard_of_each_object() -> None:
    from pyjuicefs.object.sharding import shard_index

    objs = load("objects")["shards"]["objects"]
    assert len({x["shard"] for x in objs}) > 1
    for x in objs:  # the key hashed includes the volume name prefix
        assert shard_index(x["key"], 3) == x["shard"], x["key"]


@pytest.mark.parametrize("vol", ["lz4hp", "zstd"])
def test_compressed_block_framing(vol: str) -> None:
    objs = [x for x in load("objects")[vol]["objects"] if "file" in x]
    assert len(objs) == 2
    for x in objs:
        body = (GOLDEN / x["file"]).read_bytes()
        if vol == "lz4hp":  # a raw LZ4 block: no frame, no stored size
            plain = lz4.block.decompress(body, uncompressed_size=x["plain_size"])
        else:  # one zstd frame
            assert body[:4] == b"\x28\xb5\x2f\xfd"
            plain = zstandard.ZstdDecompressor().decompress(body)
        assert hashlib.sha256(plain).hexdigest() == x["plain_sha256"]


@pytest.mark.parametrize("vol", ["lz4hp", "zstd"])
def test_compress_module_reads_binary_objects(vol: str) -> None:
    from pyjuicefs.compress import new_compressor

    comp = new_compressor(vol[:4].rstrip("h"))
    for x in (x for x in load("objects")[vol]["objects"] if "file" in x):
        plain = comp.decompress((GOLDEN / x["file"]).read_bytes(), x["plain_size"])
        assert hashlib.sha256(plain).hexdigest() == x["plain_sha256"]


def test_encrypted_block_envelope() -> None:
    """keylen u16 BE | noncelen u8 | RSA-OAEP(SHA-256, label "keys") key | nonce | AES-256-GCM."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    enc = load("s3_setting")["gold-s3enc"]
    body = bytes.fromhex(enc["object"]["body"])
    keylen, noncelen = struct.unpack_from(">HB", body)
    wrapped = body[3:3 + keylen]
    nonce = body[3 + keylen:3 + keylen + noncelen]
    priv = serialization.load_pem_private_key(enc["encrypt_key_pem"].encode(),
                                              enc["rsa_passphrase"].encode())
    key = priv.decrypt(wrapped, padding.OAEP(mgf=padding.MGF1(hashes.SHA256()),
                                             algorithm=hashes.SHA256(), label=b"keys"))
    assert (len(key), noncelen) == (32, 12)
    plain = AESGCM(key).decrypt(nonce, body[3 + keylen + noncelen:], None)
    assert plain == bytes.fromhex(enc["object"]["plain"])
