"""A volume formatted by one client is read and changed by the other (JuiceFS 1.4.2 as the oracle).

* `pyjuicefs format` → the reference `juicefs status` and `juicefs config` (show, then a change)
  accept it, on Redis, SQLite, PostgreSQL and MySQL, with file and S3 (moto) storage;
* `juicefs format` → `pyjuicefs status` shows the same Setting as `juicefs status`;
* `pyjuicefs config` on a reference-made volume → `juicefs status` reads the change.
"""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest


KINDS = ["redis", "sqlite3", "postgres", "mysql"]


def juicefs(bin_: str, *argv: object, stdin: str = "") -> tuple[int, str, str]:
    p = subprocess.run([bin_, "--no-agent", *map(str, argv)], input=stdin, capture_output=True, text=True,
                       timeout=120)
    # with MySQL, the reference binary's SQL library prints "[xorm] [info] PING DATABASE" on stdout
    out = "".join(ln for ln in p.stdout.splitlines(keepends=True) if not ln.startswith("[xorm]"))
    return p.returncode, out, p.stderr


def storage_args(storage: str, tmp_path, s3_server, precreate: bool = False) -> list[str]:
    if storage == "file":
        return ["--bucket", str(tmp_path / "bucket")]
    name = "interop-" + uuid.uuid4().hex[:12]
    if precreate:
        # juicefs 1.4.2 sends a LocationConstraint that moto refuses, so it cannot create the bucket
        import boto3

        boto3.client("s3", endpoint_url=s3_server.endpoint, aws_access_key_id=s3_server.access_key,
                     aws_secret_access_key=s3_server.secret_key, region_name="us-east-1").create_bucket(Bucket=name)
    return ["--storage", "s3", "--bucket", s3_server.bucket_url(name),
            "--access-key", s3_server.access_key, "--secret-key", s3_server.secret_key]


def comparable(setting: dict) -> dict:
    """A Setting as both clients print it; secrets are 'removed' on both sides."""
    d = dict(setting)
    for k in ("SecretKey", "SessionToken", "EncryptKey"):
        if k in d:
            assert d[k] == "removed"
    return d


@pytest.mark.parametrize("storage", ["file", "s3"])
@pytest.mark.parametrize("kind", KINDS)
def test_reference_reads_and_changes_pyjuicefs_volume(kind, storage, new_meta_url, juicefs_bin, pyjfs, tmp_path,
                                                       s3_server):
    url = new_meta_url(kind)
    rc, _, err = pyjfs("format", *storage_args(storage, tmp_path, s3_server), "--trash-days", "2", url, "pyvol")
    assert rc == 0, err
    rc, ours, err = pyjfs("status", url)
    assert rc == 0, err
    ours = json.loads(ours)

    rc, out, err = juicefs(juicefs_bin, "status", url)
    assert rc == 0, err
    theirs = json.loads(out)
    assert comparable(theirs["Setting"]) == comparable(ours["Setting"])
    assert theirs["Sessions"] == [] and theirs["Stat"] == ours["Stat"]
    if storage == "s3":
        assert theirs["Setting"]["SecretKey"] == "removed" and theirs["Setting"]["KeyEncrypted"] is True

    rc, out, err = juicefs(juicefs_bin, "config", url)
    assert rc == 0, err
    assert json.loads(out)["Name"] == "pyvol"

    rc, out, err = juicefs(juicefs_bin, "config", url, "--capacity", "10", "--inodes", "1000", "--yes")
    assert rc == 0, err
    assert "capacity: 0 B -> 10 GiB" in out
    rc, out, err = pyjfs("status", url)
    assert rc == 0, err
    s = json.loads(out)["Setting"]
    assert (s["Capacity"], s["Inodes"], s["TrashDays"]) == (10 << 30, 1000, 2)


@pytest.mark.parametrize("storage", ["file", "s3"])
@pytest.mark.parametrize("kind", KINDS)
def test_pyjuicefs_reads_and_changes_reference_volume(kind, storage, new_meta_url, juicefs_bin, pyjfs, tmp_path,
                                                       s3_server):
    url = new_meta_url(kind)
    rc, _, err = juicefs(juicefs_bin, "format", *storage_args(storage, tmp_path, s3_server, precreate=True),
                         "--block-size", "1M",
                         "--compress", "lz4", url, "refvol")
    assert rc == 0, err

    rc, out, err = juicefs(juicefs_bin, "status", url)
    assert rc == 0, err
    theirs = json.loads(out)
    rc, out, err = pyjfs("status", url)
    assert rc == 0, err
    ours = json.loads(out)
    assert comparable(ours["Setting"]) == comparable(theirs["Setting"])
    assert list(ours["Setting"]) == list(theirs["Setting"])  # same keys, same order
    assert ours["Stat"] == theirs["Stat"]

    # a change made by pyjuicefs is what the reference reads next
    rc, out, err = pyjfs("config", url, "--capacity", "5", "--trash-days", "4", "--upload-limit", "100")
    assert rc == 0, err
    assert out.splitlines() == ["  capacity: 0 B -> 5.0 GiB", "trash-days: 1 -> 4",
                                "upload-limit: 0.0 Mbps -> 100.0 Mbps"]
    rc, out, err = juicefs(juicefs_bin, "status", url)
    assert rc == 0, err
    s = json.loads(out)["Setting"]
    assert (s["Capacity"], s["TrashDays"], s["UploadLimit"], s["BlockSize"], s["Compression"]) == \
        (5 << 30, 4, 100, 1024, "lz4")
    assert s["UUID"] == theirs["Setting"]["UUID"]
    # and the reference can still change it after us
    rc, out, err = juicefs(juicefs_bin, "config", url, "--trash-days", "6")
    assert rc == 0, err
    assert "trash-days: 4 -> 6" in out


@pytest.mark.parametrize("kind", ["sqlite3", "redis"])
def test_both_clients_print_the_same_config(kind, new_meta_url, juicefs_bin, pyjfs, tmp_path):
    url = new_meta_url(kind)
    rc, _, err = pyjfs("format", "--bucket", tmp_path / "b", "--access-key", "AK", "--secret-key", "SK", url, "vol")
    assert rc == 0, err
    rc, theirs, err = juicefs(juicefs_bin, "config", url)
    assert rc == 0, err
    rc, ours, err = pyjfs("config", url)
    assert rc == 0, err
    assert ours == theirs
    # the same change, printed the same way by both
    rc, theirs, err = juicefs(juicefs_bin, "config", url, "--inodes", "1234567", "--download-limit", "1G")
    assert rc == 0, err
    assert theirs == "    inodes: 0 -> 1,234,567\ndownload-limit: 0.0 Mbps -> 1.0 Gbps\n" or \
        theirs.splitlines() == ["download-limit: 0.0 Mbps -> 1.0 Gbps", "    inodes: 0 -> 1,234,567"]
    rc, ours, err = pyjfs("config", url, "--inodes", "7654321", "--download-limit", "2G")
    assert rc == 0, err
    assert ours.splitlines() == ["download-limit: 1.0 Gbps -> 2.0 Gbps", "    inodes: 1,234,567 -> 7,654,321"]


def test_reference_refuses_nothing_we_refuse_wrongly(new_meta_url, juicefs_bin, pyjfs, tmp_path):
    """Formatting again with the same settings is fine for both; a block size change is refused by both."""
    url = new_meta_url("sqlite3")
    b = tmp_path / "b"
    assert pyjfs("format", "--bucket", b, url, "vol")[0] == 0
    rc, _, err = juicefs(juicefs_bin, "format", "--bucket", b, url, "vol")
    assert rc == 0, err
    rc, _, err = juicefs(juicefs_bin, "format", "--bucket", b, "--block-size", "1M", url, "vol")
    assert rc != 0 and "cannot update volume block size from 4096 to 1024" in err
    rc, _, err = pyjfs("format", "--bucket", b, "--block-size", "1M", url, "vol")
    assert rc != 0 and "cannot update volume block size from 4096 to 1024" in err
    assert pyjfs("format", "--bucket", b, url, "vol")[0] == 0
