"""Block object names and shard routing: golden strings, and what the reference binary writes."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from pyjuicefs.errors import UserError
from pyjuicefs.format import Format
from pyjuicefs.object import create_storage
from pyjuicefs.object.names import BlockName, block_key, parse_block_key, slice_keys
from pyjuicefs.object.sharding import ShardedStorage, fnv32a, shard_index, shard_name
from pyjuicefs.object.mem import MemStorage


@pytest.mark.parametrize("sid,indx,size,hp,want", [
    (1, 0, 6, False, "chunks/0/0/1_0_6"),
    (5000, 9, 4194304, False, "chunks/0/5/5000_9_4194304"),
    (1234567, 2, 100, False, "chunks/1/1234/1234567_2_100"),
    (987654321012, 15, 4194304, False, "chunks/987654/987654321/987654321012_15_4194304"),
    (1, 0, 6, True, "chunks/01/0/1_0_6"),
    (255, 1, 7, True, "chunks/FF/0/255_1_7"),
    (256, 0, 7, True, "chunks/00/0/256_0_7"),
    (4110, 0, 7, True, "chunks/0E/0/4110_0_7"),
    (1234567, 2, 100, True, "chunks/87/1/1234567_2_100"),
])
def test_block_key_golden(sid, indx, size, hp, want):
    assert block_key(sid, indx, size, hp) == want
    assert parse_block_key(want) == BlockName(sid, indx, size, hp)


def test_slice_keys():
    assert slice_keys(7, 0, 4 << 20) == []
    assert slice_keys(7, 10, 4 << 20) == ["chunks/0/0/7_0_10"]
    assert slice_keys(2, 5000000, 4194304, True) == ["chunks/02/0/2_0_4194304", "chunks/02/0/2_1_805696"]
    assert slice_keys(3, 8 << 20, 4 << 20) == ["chunks/0/0/3_0_4194304", "chunks/0/0/3_1_4194304"]


@pytest.mark.parametrize("key", [
    "chunks/0/1/1_0_6",          # wrong directory for the id
    "chunks/02/0/1_0_6",         # wrong hash directory
    "chunks/0e/0/4110_0_7",      # hash directories are upper case
    "chunks/0/0/1_0",
    "chunks/0/0/x_0_6",
    "juicefs_uuid",
    "meta/dump-2024-01-01-000000.json.gz",
    "chunks/0/0/1_0_6.tmp",
])
def test_parse_rejects_non_blocks(key):
    assert parse_block_key(key) is None


def test_fnv32a_vectors():
    # Published FNV-1a 32-bit test vectors.
    assert fnv32a(b"") == 0x811C9DC5
    assert fnv32a(b"a") == 0xE40C292C
    assert fnv32a(b"foobar") == 0xBF9CF968


def test_shard_name():
    assert shard_name("/var/jfs/vol-%d/", 2) == "/var/jfs/vol-2/"
    assert shard_name("http://127.0.0.1:9000/bucket-%d", 0) == "http://127.0.0.1:9000/bucket-0"
    assert shard_name("b%02d", 3) == "b03"
    assert shard_name("100%%-%d", 1) == "100%-1"
    with pytest.raises(UserError):
        shard_name("/var/jfs/vol", 1)
    with pytest.raises(UserError):
        shard_name("/a-%d/b-%d", 1)


def test_shard_routing_and_merged_listing():
    shards = [MemStorage() for _ in range(4)]
    st = ShardedStorage(shards)
    keys = [f"vol/chunks/0/0/{i}_0_4" for i in range(200)]
    for k in keys:
        st.put(k, b"data")
    for k in keys:
        assert shards[shard_index(k, 4)].head(k).size == 4
        assert sum(1 for s in shards if s.list(k, limit=1)) == 1
    assert all(s.list() for s in shards)  # every shard got some
    assert [o.key for o in st.list(limit=50)] == sorted(keys)[:50]
    assert [o.key for o in st.list_all()] == sorted(keys)
    assert str(st) == "shard4://mem:///"


# --- against the reference binary ------------------------------------------------------------

@pytest.mark.juicefs
@pytest.mark.parametrize("shards,hash_prefix", [(0, False), (3, True)])
def test_reference_binary_layout(juicefs_bin, tmp_path, shards, hash_prefix):
    """Objects the reference client writes are where our names and shard routing say they are."""
    meta = f"sqlite3://{tmp_path}/meta.db"
    bucket = str(tmp_path / ("b-%d" if shards else "b"))
    args = [juicefs_bin, "format", "--storage", "file", "--bucket", bucket, meta, "vol"]
    if shards:
        args[2:2] = ["--shards", str(shards)]
    if hash_prefix:
        args[2:2] = ["--hash-prefix"]
    subprocess.run(args, check=True, capture_output=True, timeout=60)
    src = tmp_path / "src"
    src.mkdir()
    (src / "big").write_bytes(os.urandom(5_000_000))
    for i in range(12):
        (src / f"small{i}").write_bytes(b"x" * (i + 1))
    env = dict(os.environ, JFSMETA=meta)
    subprocess.run([juicefs_bin, "sync", f"{src}/", "jfs://JFSMETA/"], check=True, capture_output=True,
                   timeout=120, env=env)
    status = subprocess.run([juicefs_bin, "status", meta], check=True, capture_output=True, timeout=60)
    fmt = Format.from_json(json.dumps(json.loads(status.stdout)["Setting"]))

    # What is on disk, per shard directory.
    found: dict[str, int] = {}
    for n in range(max(shards, 1)):
        root = tmp_path / (f"b-{n}" if shards else "b")
        for dirpath, _, files in os.walk(root):
            for f in files:
                key = os.path.relpath(os.path.join(dirpath, f), root)
                found[key] = n
                if shards:
                    assert shard_index(key, shards) == n, key
    blocks = {k: v for k, v in found.items() if k.startswith("vol/chunks/")}
    assert len(blocks) >= 14  # 2 blocks of the big file, 12 small ones
    for key in blocks:
        name = parse_block_key(key[len("vol/"):])
        assert name is not None and name.hash_prefix == hash_prefix, key
        assert block_key(name.slice_id, name.indx, name.size, hash_prefix) == key[len("vol/"):]
    sizes = sorted(parse_block_key(k[4:]).size for k in blocks)
    assert sizes[-2:] == [805696, 4194304] and sizes[:12] == list(range(1, 13))

    # The same objects through our stack.
    st = create_storage(fmt, retries=0)
    listed = {o.key: o.size for o in st.list_all("chunks/")}
    assert set(listed) == {k[len("vol/"):] for k in blocks}
    for key, size in listed.items():
        assert len(st.get(key)) == size == parse_block_key(key).size
    assert st.get("juicefs_uuid").decode() == fmt.UUID
