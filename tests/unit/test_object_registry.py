"""Storage kinds, bucket defaults and how create_storage() stacks a volume's stores."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pyjuicefs.errors import StorageError, UserError
from pyjuicefs.format import Format
from pyjuicefs.object import STORAGE_KINDS, create_storage, default_bucket, new_store, normalize_bucket
from pyjuicefs.object.file import FileStorage
from pyjuicefs.object.mem import MemStorage
from pyjuicefs.object.prefix import WithPrefix
from pyjuicefs.object.retry import RetryingStorage
from pyjuicefs.object.sharding import ShardedStorage


def test_kinds():
    assert set(STORAGE_KINDS) == {"file", "s3", "minio", "oss", "mem"}


def test_unknown_kind_lists_the_supported_ones():
    with pytest.raises(UserError) as ei:
        new_store("gopher", "x")
    msg = str(ei.value)
    assert "gopher" in msg and all(k in msg for k in STORAGE_KINDS)
    with pytest.raises(UserError):
        create_storage(Format(Name="v", Storage="nfs3", Bucket="x"))


def test_default_bucket():
    if os.getuid() == 0:
        assert default_bucket() == "/var/jfs/"
    else:
        assert default_bucket() == os.path.expanduser("~/.juicefs/local/")


def test_normalize_bucket(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert normalize_bucket("file", "data") == f"{tmp_path}/data/"
    assert normalize_bucket("file", "/var/jfs") == "/var/jfs/"
    assert normalize_bucket("FILE", "/var/jfs/") == "/var/jfs/"
    assert normalize_bucket("file", "file:///srv/x") == "/srv/x/"
    assert normalize_bucket("file", "") == default_bucket()
    assert normalize_bucket("s3", "http://h:9000/b") == "http://h:9000/b"


def test_file_stack(tmp_path):
    st = create_storage(Format(Name="myjfs", Storage="file", Bucket=str(tmp_path / "b")), retries=3)
    assert isinstance(st, RetryingStorage) and st.retries == 3
    assert isinstance(st.store, WithPrefix) and isinstance(st.store.store, FileStorage)
    assert str(st) == f"file://{tmp_path}/b/myjfs/"
    st.put("chunks/0/0/1_0_3", b"abc")
    path = tmp_path / "b" / "myjfs" / "chunks" / "0" / "0" / "1_0_3"
    assert path.read_bytes() == b"abc"
    assert path.stat().st_mode & 0o777 == 0o644 & ~_umask()
    assert (tmp_path / "b" / "myjfs").stat().st_mode & 0o777 == 0o755 & ~_umask()
    assert not [p for p in path.parent.iterdir() if p.name != "1_0_3"]  # no temporary left


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


def test_empty_storage_is_file(tmp_path):
    st = create_storage(Format(Name="v", Storage="", Bucket=str(tmp_path)))
    assert str(st) == f"file://{tmp_path}/v/"


def test_sharded_stack(tmp_path):
    fmt = Format(Name="v", Storage="file", Bucket=f"{tmp_path}/s-%d/", Shards=4)
    st = create_storage(fmt)
    sharded = st.store.store
    assert isinstance(sharded, ShardedStorage) and len(sharded.stores) == 4
    assert [str(s) for s in sharded.stores] == [f"file://{tmp_path}/s-{i}/" for i in range(4)]
    for i in range(40):
        st.put(f"k{i}", b"x")
    assert [o.key for o in st.list_all()] == sorted(f"k{i}" for i in range(40))
    assert all((tmp_path / f"s-{i}" / "v").is_dir() for i in range(4))
    with pytest.raises(UserError):
        create_storage(Format(Name="v", Storage="file", Bucket=str(tmp_path), Shards=2))


def test_mem_buckets_are_shared_by_name():
    name = "test-registry-shared"
    try:
        a = create_storage(Format(Name="v", Storage="mem", Bucket=name))
        b = create_storage(Format(Name="v", Storage="mem", Bucket=name))
        a.put("k", b"1")
        assert b.get("k") == b"1"
        assert MemStorage().list() == []
    finally:
        MemStorage.drop(name)


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "./a", "dir/", "nul\0"])
def test_file_store_refuses_bad_keys(tmp_path, key):
    st = FileStorage(str(tmp_path))
    with pytest.raises(StorageError):
        st.put(key, b"x")


def test_file_store_put_failure_leaves_nothing(tmp_path):
    class Boom:
        def read(self, n=-1):
            raise OSError(5, "Input/output error")

    st = FileStorage(str(tmp_path / "b"))
    st.put("d/ok", b"1")
    with pytest.raises(StorageError):
        st.put("d/bad", Boom())
    assert sorted(os.listdir(tmp_path / "b" / "d")) == ["ok"]


def test_importing_does_not_import_boto3():
    code = ("import sys, pyjuicefs.object as o; from pyjuicefs.format import Format; "
            "o.create_storage(Format(Name='v', Storage='mem', Bucket='x')); "
            "o.new_store('file', '/tmp/x'); "
            "from pyjuicefs.object.s3url import parse_s3; parse_s3('http://h:1/b'); "
            "assert 'boto3' not in sys.modules and 'botocore' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_file_store_hides_leftover_temporaries(tmp_path):
    st = FileStorage(str(tmp_path))
    st.put("d/k", b"1")
    (tmp_path / "d" / ".k.tmp-0123456789abcdef").write_bytes(b"partial")  # a crash mid-put
    assert [o.key for o in st.list()] == ["d/k"]
