"""`pyjuicefs config`: show, change only the flags given, confirmations, and what is printed."""

from __future__ import annotations

import pytest

from pyjuicefs.format import Format
from pyjuicefs.meta import new_engine


def stored(url: str) -> Format:
    e = new_engine(url)
    try:
        return Format.from_json(e.load_setting())
    finally:
        e.close()


@pytest.fixture
def volume(cli, new_meta_url, bucket):
    url = new_meta_url("sqlite3")
    assert cli("format", "--bucket", bucket, url, "myjfs").rc == 0
    return url


def test_config_show(cli, volume):
    r = cli("config", volume)
    assert r.rc == 0
    assert r.out == str(stored(volume)) + "\n"


def test_config_changes_printed_like_juicefs(cli, volume):
    r = cli("config", volume, "--capacity", "10", "--inodes", "1234567", "--trash-days", "3",
            "--upload-limit", "1.5G", "--download-limit", "7", "--min-client-version", "1.2.0", "--dir-stats=false")
    assert r.rc == 0, r.err
    assert r.out.splitlines() == [
        "  capacity: 0 B -> 10 GiB",
        " dir-stats: true -> false",
        "download-limit: 0.0 Mbps -> 7.0 Mbps",
        "    inodes: 0 -> 1,234,567",
        "trash-days: 1 -> 3",
        "upload-limit: 0.0 Mbps -> 1.5 Gbps",
        "min-client-version: 1.1.0-A -> 1.2.0",
    ]
    f = stored(volume)
    assert (f.Capacity, f.Inodes, f.TrashDays, f.UploadLimit, f.DownloadLimit) == (10 << 30, 1234567, 3, 1500, 7)
    assert (f.MinClientVersion, f.DirStats, f.Name, f.BlockSize) == ("1.2.0", False, "myjfs", 4096)


def test_config_nothing_changed(cli, volume):
    r = cli("config", volume, "--trash-days", "1")
    assert r.rc == 0 and r.out == "Nothing changed.\n"


def test_config_trash_off_needs_confirmation(cli, volume):
    r = cli("config", volume, "--trash-days", "0")  # stdin closed: treated as no
    assert r.rc != 0 and "Aborted." in r.err
    assert "Proceed anyway? [y/N]" in r.out and "--yes" in r.err
    assert stored(volume).TrashDays == 1
    r = cli("config", volume, "--trash-days", "0", stdin="y\n")
    assert r.rc == 0 and r.out.endswith("trash-days: 1 -> 0\n")
    assert stored(volume).TrashDays == 0


def test_config_yes(cli, volume):
    r = cli("config", volume, "--max-client-version", "1.0.0", "-y")
    assert r.rc == 0, r.err
    assert "Clients below version 1.1.0-A will be rejected after modification." in r.out
    assert stored(volume).MaxClientVersion == "1.0.0"


def test_config_refusals(cli, volume):
    before = stored(volume).to_json()
    for argv, needle in [
        (["--min-client-version", "1.0.0"], "cannot lower min-client-version from 1.1.0-A to 1.0.0"),
        (["--min-client-version", "1.x"], "Invalid version string: 1.x"),
        (["--trash-days", "-2"], "Invalid trash days: -2"),
        (["--upload-limit", "2K"], "upload-limit"),
        (["--capacity", "xyz"], "capacity"),
    ]:
        r = cli("config", volume, *argv)
        assert r.rc != 0 and needle in r.err, (argv, r.err)
    assert stored(volume).to_json() == before


def test_config_bucket_is_checked(cli, volume, tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    r = cli("config", volume, "--bucket", f / "b")
    assert r.rc != 0 and "is not configured correctly" in r.err
    r = cli("config", volume, "--bucket", f / "b", "--force")
    assert r.rc == 0 and f"bucket: {stored(volume).Bucket}" not in r.out
    assert stored(volume).Bucket == f"{f}/b/"
    newb = tmp_path / "newbucket"
    r = cli("config", volume, "--bucket", newb)
    assert r.rc == 0, r.err
    assert r.out == f"    bucket: {f}/b/ -> {newb}/\n"


def test_config_secret_stays_encrypted(cli, volume):
    r = cli("config", volume, "--access-key", "AK", "--secret-key", "NEWSECRET", "--force")
    assert r.rc == 0, r.err
    assert r.out.splitlines() == ["access-key:  -> AK", "secret-key: updated"]
    assert "NEWSECRET" not in r.out + r.err
    f = stored(volume)
    assert f.KeyEncrypted and f.SecretKey != "NEWSECRET"
    f.decrypt()
    assert f.SecretKey == "NEWSECRET"
    assert '"SecretKey": "removed"' in cli("config", volume).out
