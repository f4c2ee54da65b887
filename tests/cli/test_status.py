"""`pyjuicefs status`: the JSON shape JuiceFS 1.4.2 prints, sessions and usage."""

from __future__ import annotations

import json
import time

import pytest

from pyjuicefs.meta import new_engine


@pytest.fixture
def volume(cli, new_meta_url, bucket):
    url = new_meta_url("sqlite3")
    r = cli("format", "--bucket", bucket, "--secret-key", "hidden", "--access-key", "ak", url, "myjfs")
    assert r.rc == 0, r.err
    return url


def test_status_shape(cli, volume, bucket):
    r = cli("status", volume)
    assert r.rc == 0, r.err
    d = r.json
    assert list(d) == ["Setting", "Sessions", "Stat"]
    s = d["Setting"]
    assert s["Name"] == "myjfs" and s["Bucket"] == f"{bucket}/"
    assert s["SecretKey"] == "removed" and s["KeyEncrypted"] is True
    assert list(s)[:5] == ["Name", "UUID", "Storage", "Tiers", "Bucket"]
    assert d["Sessions"] == []
    assert d["Stat"] == {"UsedSpace": 0, "AvailableSpace": 1 << 50, "UsedInodes": 0, "AvailableInodes": 10 << 20}
    assert r.out.startswith('{\n  "Setting": {\n    "Name": "myjfs",')


def test_status_quota_and_usage(cli, volume):
    assert cli("config", volume, "--capacity", "1", "--inodes", "100").rc == 0
    e = new_engine(volume)
    try:
        e.incr_counter("usedSpace", 4096)
        e.incr_counter("totalInodes", 3)
    finally:
        e.close()
    st = cli("status", volume).json["Stat"]
    assert st == {"UsedSpace": 4096, "AvailableSpace": (1 << 30) - 4096, "UsedInodes": 3, "AvailableInodes": 97}
    assert cli("status", "-m", volume).json["Stat"] == st


def test_status_sessions(cli, volume):
    info = {"Version": "1.4.2+2026-10-26.pypi", "HostName": "h1", "IPAddrs": ["10.0.0.1"], "MountPoint": "/mnt/x",
            "MountTime": "2026-11-25T11:49:08.055151547Z", "ProcessID": 42}
    expire = int(time.time()) + 60
    e = new_engine(volume)
    try:
        e.save_session(7, expire, json.dumps(info).encode())
    finally:
        e.close()
    d = cli("status", volume).json
    assert len(d["Sessions"]) == 1
    s = d["Sessions"][0]
    assert list(s) == ["Sid", "Expire", "Version", "HostName", "IPAddrs", "MountPoint", "MountTime", "ProcessID"]
    assert s["Sid"] == 7 and s["HostName"] == "h1" and s["ProcessID"] == 42 and s["MountTime"] == info["MountTime"]
    one = cli("status", "-s", "7", volume)
    assert one.rc == 0 and one.json["Sid"] == 7 and "Sustained" not in one.json
    missing = cli("status", "--session", "99", volume)
    assert missing.rc != 0 and "session not found: 99" in missing.err
