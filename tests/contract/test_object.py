"""The object storage contract (pyjuicefs.object.base), run against every store and wrapper.

Stores: a local directory, memory, a moto S3 server on loopback, and the stacks create_storage()
builds: a prefixed store (one volume in a shared bucket) and three sharded directories.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
import uuid

import pytest

from pyjuicefs.errors import ObjectNotFound
from pyjuicefs.format import Format
from pyjuicefs.object import create_storage
from pyjuicefs.object.base import ObjectStorage
from pyjuicefs.object.file import FileStorage
from pyjuicefs.object.mem import MemStorage
from pyjuicefs.object.prefix import WithPrefix

KINDS = ["file", "mem", "s3", "prefix", "sharded"]


def _s3(request) -> ObjectStorage:
    from pyjuicefs.object.s3 import S3Storage
    from pyjuicefs.object.s3url import parse_bucket_url

    srv = request.getfixturevalue("s3_server")
    loc = parse_bucket_url("s3", srv.bucket_url(f"contract-{uuid.uuid4().hex[:12]}"))
    # A low multipart threshold so that the large-object test goes through multipart upload.
    st = S3Storage(loc, srv.access_key, srv.secret_key, get_timeout=30, put_timeout=30,
                   multipart_threshold=8 << 20, part_size=5 << 20)
    st.create()
    return st


@pytest.fixture(params=KINDS)
def store(request, tmp_path):
    kind = request.param
    if kind == "file":
        st: ObjectStorage = FileStorage(str(tmp_path / "bucket"))
    elif kind == "mem":
        st = MemStorage()
    elif kind == "s3":
        st = _s3(request)
    elif kind == "prefix":
        inner = FileStorage(str(tmp_path / "shared"))
        inner.put("other/outside", b"not ours")  # another volume in the same bucket
        inner.put("vol.x", b"not ours either")  # sorts just before "vol/"
        inner.put("vol0", b"nor this")
        st = WithPrefix(inner, "vol/")
    else:
        fmt = Format(Name="vol", Storage="file", Bucket=str(tmp_path / "shard-%d"), Shards=3)
        st = create_storage(fmt, retries=2)
    st.create()
    yield st
    st.close()


# --- put / get -----------------------------------------------------------------------------

def test_put_get_whole(store):
    store.put("k1", b"hello world")
    assert store.get("k1") == b"hello world"
    store.put("empty", b"")
    assert store.get("empty") == b""
    assert store.head("empty").size == 0


@pytest.mark.parametrize("off,limit,want", [
    (0, -1, b"0123456789"),
    (0, 4, b"0123"),
    (3, 4, b"3456"),
    (3, -1, b"3456789"),
    (8, 10, b"89"),     # limit past the end: what is there
    (9, 1, b"9"),
    (10, -1, b""),      # offset at the end
    (25, 5, b""),       # offset past the end
    (4, 0, b""),        # limit 0
])
def test_get_ranges(store, off, limit, want):
    store.put("r", b"0123456789")
    assert store.get("r", off, limit) == want


def test_get_and_head_missing(store):
    with pytest.raises(ObjectNotFound):
        store.get("nope")
    with pytest.raises(ObjectNotFound):
        store.get("nope", 5, 10)
    with pytest.raises(ObjectNotFound):
        store.head("no/such/key")


def test_head(store):
    store.put("d/h", b"x" * 1234)
    info = store.head("d/h")
    assert info.key == "d/h" and info.size == 1234 and info.mtime > 0 and not info.is_dir


def test_put_from_file_objects(store):
    store.put("bio", io.BytesIO(b"from a stream"))
    store.put("ba", bytearray(b"from a bytearray"))
    store.put("mv", memoryview(b"from a memoryview"))
    assert store.get("bio") == b"from a stream"
    assert store.get("ba") == b"from a bytearray"
    assert store.get("mv") == b"from a memoryview"


def test_overwrite(store):
    store.put("ow", b"first version, longer")
    store.put("ow", b"second")
    assert store.get("ow") == b"second"
    assert store.head("ow").size == 6


def test_overwrite_is_atomic(store):
    size = 256 << 10
    store.put("atomic", b"a" * size)
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for i in range(15):
                store.put("atomic", (b"b" if i % 2 == 0 else b"a") * size)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)
        finally:
            stop.set()

    t = threading.Thread(target=writer)
    t.start()
    reads = 0
    while not stop.is_set() or reads < 3:
        data = store.get("atomic")
        assert len(data) == size and data in (b"a" * size, b"b" * size)
        reads += 1
    t.join()
    assert not errors


def test_large_object_from_file(store, tmp_path):
    path = tmp_path / "big.bin"
    block = os.urandom(1 << 20)
    with open(path, "wb") as f:
        for i in range(20):
            f.write(bytes([i]) + block[1:])
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with open(path, "rb") as f:
        store.put("big/object", f)
    assert store.head("big/object").size == 20 << 20
    assert hashlib.sha256(store.get("big/object")).hexdigest() == digest
    tail = store.get("big/object", (20 << 20) - 10, 100)
    assert tail == block[-10:]
    assert store.get("big/object", 7 << 20, 1) == bytes([7])


# --- delete --------------------------------------------------------------------------------

def test_delete_idempotent(store):
    store.put("x/y/z", b"1")
    store.delete("x/y/z")
    with pytest.raises(ObjectNotFound):
        store.head("x/y/z")
    store.delete("x/y/z")
    store.delete("never/existed")
    assert store.list("x/") == []


# --- list ----------------------------------------------------------------------------------

# Chosen so that directory boundaries and flat key order disagree ('-' and '.' sort before '/').
LIST_KEYS = [
    "a-1", "a.b", "a/x", "a/y/z", "a0", "b/c-d", "b/c/d", "b/c0",
    "chunks/0/0/1_0_4", "chunks/0/1/1000_0_4", "chunks/0/1/1001_0_4194304", "chunks/1/1000/1000000_0_9",
    "z",
]


def _keys(infos) -> list[str]:
    return [o.key for o in infos]


def test_list_empty(store):
    assert store.list() == []
    assert store.list("nothing/") == []
    assert list(store.list_all()) == []


def test_list_sorted_prefix_start_after_limit(store):
    for i, k in enumerate(reversed(LIST_KEYS)):
        store.put(k, b"v" * (i + 1))
    want = sorted(LIST_KEYS)
    got = store.list()
    assert _keys(got) == want
    sizes = {o.key: o.size for o in got}
    assert sizes["z"] == 1 and sizes["a-1"] == len(LIST_KEYS)

    assert _keys(store.list("a")) == [k for k in want if k.startswith("a")]
    assert _keys(store.list("a/")) == ["a/x", "a/y/z"]
    assert _keys(store.list("b/c")) == ["b/c-d", "b/c/d", "b/c0"]
    assert _keys(store.list("chunks/0/1/")) == ["chunks/0/1/1000_0_4", "chunks/0/1/1001_0_4194304"]
    assert _keys(store.list("chunks/0/1/1001")) == ["chunks/0/1/1001_0_4194304"]
    assert store.list("chunks/2") == []

    assert _keys(store.list(start_after="a0")) == [k for k in want if k > "a0"]
    assert _keys(store.list(start_after="a/")) == [k for k in want if k > "a/"]
    assert _keys(store.list(start_after="b/c/")) == [k for k in want if k > "b/c/"]
    assert _keys(store.list("chunks/", "chunks/0/0/1_0_4")) == [
        k for k in want if k.startswith("chunks/") and k > "chunks/0/0/1_0_4"]
    assert store.list(start_after="z") == []
    assert store.list("a", start_after="b") == []

    assert _keys(store.list(limit=3)) == want[:3]
    assert _keys(store.list("b/", limit=1)) == ["b/c-d"]
    assert _keys(store.list(start_after=want[4], limit=2)) == want[5:7]
    assert _keys(store.list_all()) == want
    assert _keys(store.list_all("chunks/", "chunks/0/1/1000_0_4")) == [
        "chunks/0/1/1001_0_4194304", "chunks/1/1000/1000000_0_9"]


def test_list_paging_beyond_1000(store):
    from concurrent.futures import ThreadPoolExecutor

    keys = [f"p/{i % 7}/{i:05d}" for i in range(2345)]
    with ThreadPoolExecutor(8) as ex:
        list(ex.map(lambda k: store.put(k, b"."), keys))
    want = sorted(keys)
    first = store.list("p/")
    assert _keys(first) == want[:1000]
    assert _keys(store.list("p/", first[-1].key)) == want[1000:2000]
    assert _keys(store.list_all("p/")) == want
    assert _keys(store.list_all("p/3/")) == [k for k in want if k.startswith("p/3/")]
    assert _keys(store.list_all(start_after=want[1500])) == want[1501:]


def test_odd_keys(store):
    keys = ["sp ace/a b", "uni/é/ü-ñ", "sym/+%=&~!@$()[],;'", "deep/" + "/".join("abcdefghij"),
            "dots/..x/x..", "tab/\tx", "quote/\"q\""]
    for k in keys:
        store.put(k, k.encode())
    for k in keys:
        assert store.get(k) == k.encode()
        assert store.head(k).size == len(k.encode())
    assert _keys(store.list_all()) == sorted(keys)
    assert _keys(store.list("uni/")) == ["uni/é/ü-ñ"]


def test_description(store):
    assert str(store).split("://")[0] in ("file", "mem", "s3", "shard3")


def test_prefix_store_sees_only_its_volume(tmp_path):
    inner = FileStorage(str(tmp_path / "b"))
    inner.put("other/x", b"1")
    st = WithPrefix(inner, "vol/")
    st.put("chunks/0/0/1_0_1", b"2")
    assert (tmp_path / "b" / "vol" / "chunks" / "0" / "0" / "1_0_1").read_bytes() == b"2"
    assert _keys(st.list()) == ["chunks/0/0/1_0_1"]
    assert st.head("chunks/0/0/1_0_1").key == "chunks/0/0/1_0_1"
    assert str(st) == f"file://{tmp_path}/b/vol/"
