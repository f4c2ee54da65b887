"""`pyjuicefs format`: what it stores, JuiceFS's update rules, and refusals that write nothing."""

from __future__ import annotations

import json

import pytest

from pyjuicefs.format import Format
from pyjuicefs.meta import new_engine


def stored(url: str) -> Format | None:
    e = new_engine(url)
    try:
        raw = e.load_setting()
        return None if raw is None else Format.from_json(raw)
    finally:
        e.close()


@pytest.mark.parametrize("kind", ["sqlite3", "redis"])
def test_format_new_volume(cli, new_meta_url, bucket, kind):
    url = new_meta_url(kind)
    r = cli("format", "--bucket", bucket, "--trash-days", "3", "--capacity", "2", "--inodes", "1000",
            "--block-size", "1M", "--compress", "lz4", url, "myjfs")
    assert r.rc == 0, r.err
    assert "Meta address:" in r.err
    assert f"Data use file://{bucket}/myjfs/" in r.err
    assert "Volume is formatted as {" in r.err
    f = stored(url)
    assert f is not None
    assert (f.Name, f.Storage, f.Bucket) == ("myjfs", "file", f"{bucket}/")
    assert (f.BlockSize, f.Compression, f.TrashDays) == (1024, "lz4", 3)
    assert (f.Capacity, f.Inodes) == (2 << 30, 1000)
    assert (f.MetaVersion, f.MinClientVersion, f.DirStats, f.EncryptAlgo) == (1, "1.1.0-A", True, "aes256gcm-rsa")
    assert f.Tiers == {"0": {"ID": 0, "StorageClass": "", "Tag": ""}}
    assert len(f.UUID) == 36
    # the bucket holds the uuid object, and no probe is left behind
    assert (bucket / "myjfs" / "juicefs_uuid").read_text() == f.UUID
    assert not list((bucket / "myjfs").glob("testing/*"))


def test_format_prints_settings_without_secrets(cli, new_meta_url, bucket):
    url = new_meta_url("sqlite3")
    r = cli("format", "--bucket", bucket, "--access-key", "AK", "--secret-key", "SK-very-secret",
            "--session-token", "TOK-secret", url, "myjfs")
    assert r.rc == 0, r.err
    assert "SK-very-secret" not in r.err and "TOK-secret" not in r.err
    printed = r.err.split("Volume is formatted as ", 1)[1]
    d = json.loads(printed[: printed.rindex("}") + 1])
    assert d["SecretKey"] == "removed" and d["SessionToken"] == "removed" and d["AccessKey"] == "AK"
    f = stored(url)
    assert f.KeyEncrypted and f.SecretKey not in ("SK-very-secret", "removed")
    f.decrypt()
    assert (f.SecretKey, f.SessionToken) == ("SK-very-secret", "TOK-secret")


def test_format_env_credentials(cli, new_meta_url, bucket, monkeypatch):
    monkeypatch.setenv("ACCESS_KEY", "envak")
    monkeypatch.setenv("SECRET_KEY", "envsk")
    url = new_meta_url("sqlite3")
    assert cli("format", "--bucket", bucket, url, "myjfs").rc == 0
    f = stored(url)
    f.decrypt()
    assert (f.AccessKey, f.SecretKey) == ("envak", "envsk")


def test_format_twice_same_settings_ok(cli, new_meta_url, bucket):
    url = new_meta_url("sqlite3")
    assert cli("format", "--bucket", bucket, url, "myjfs").rc == 0
    first = stored(url)
    r = cli("format", "--bucket", bucket, url, "myjfs")
    assert r.rc == 0, r.err
    assert stored(url).UUID == first.UUID


def test_format_twice_different_block_size_refused(cli, new_meta_url, bucket):
    url = new_meta_url("sqlite3")
    assert cli("format", "--bucket", bucket, url, "myjfs").rc == 0
    before = stored(url).to_json()
    r = cli("format", "--bucket", bucket, "--block-size", "1M", url, "myjfs")
    assert r.rc != 0
    assert r.error_lines() and "cannot update volume block size from 4096 to 1024" in r.error_lines()[0]
    assert stored(url).to_json() == before


def test_format_twice_different_name_refused(cli, new_meta_url, bucket):
    url = new_meta_url("sqlite3")
    assert cli("format", "--bucket", bucket, url, "myjfs").rc == 0
    r = cli("format", "--bucket", bucket, url, "other")
    assert r.rc != 0 and "cannot update volume name from myjfs to other" in r.err
    assert stored(url).Name == "myjfs"


def test_format_update_changes_given_flags_only(cli, new_meta_url, bucket):
    url = new_meta_url("sqlite3")
    assert cli("format", "--bucket", bucket, "--trash-days", "5", url, "myjfs").rc == 0
    assert cli("format", "--capacity", "7", url, "myjfs").rc == 0
    f = stored(url)
    assert (f.Capacity, f.TrashDays, f.Bucket) == (7 << 30, 5, f"{bucket}/")


def test_format_no_update_keeps_volume(cli, new_meta_url, bucket):
    url = new_meta_url("sqlite3")
    assert cli("format", "--bucket", bucket, url, "myjfs").rc == 0
    before = stored(url).to_json()
    r = cli("format", "--no-update", "--block-size", "1M", "--capacity", "9", url, "myjfs")
    assert r.rc == 0, r.err
    assert stored(url).to_json() == before


def test_format_refuses_non_empty_prefix(cli, new_meta_url, bucket):
    (bucket / "myjfs" / "chunks").mkdir(parents=True)
    (bucket / "myjfs" / "chunks" / "1_0_4").write_bytes(b"data")
    url = new_meta_url("sqlite3")
    r = cli("format", "--bucket", bucket, url, "myjfs")
    assert r.rc != 0 and "is not empty" in r.err
    assert stored(url) is None


def test_format_sharded(cli, new_meta_url, tmp_path):
    url = new_meta_url("sqlite3")
    r = cli("format", "--bucket", f"{tmp_path}/jfs-%d", "--shards", "2", url, "myjfs")
    assert r.rc == 0, r.err
    assert stored(url).Shards == 2
    assert any((tmp_path / f"jfs-{i}" / "myjfs" / "juicefs_uuid").exists() for i in range(2))


def test_format_s3(cli, new_meta_url, s3_server):
    url = new_meta_url("sqlite3")
    r = cli("format", "--storage", "s3", "--bucket", s3_server.bucket_url("fmt-s3-test"),
            "--access-key", s3_server.access_key, "--secret-key", s3_server.secret_key, url, "myjfs")
    assert r.rc == 0, r.err
    f = stored(url)
    assert (f.Storage, f.Bucket) == ("s3", s3_server.bucket_url("fmt-s3-test"))
