"""`pyjuicefs objbench BUCKET` on a `file` bucket and on the moto S3 server: the functional check
table, the performance table, the JSON form, clean-up, and bad arguments."""

from __future__ import annotations

import os
import re
import socket
import uuid

import pytest

CHECKS = ("create a bucket", "put an object", "get an object", "get non-exist", "get partial object",
          "head an object", "delete an object", "delete non-exist", "list objects", "special key",
          "put a big object", "put an empty object", "multipart upload", "change owner/group",
          "change permission", "change mtime")
PERF = ("upload objects", "download objects", "put small objects", "get small objects", "list objects",
        "head objects", "delete objects", "change permissions", "change owner/group", "update mtime")
TINY = ("--big-object-size", "2M", "--block-size", "512K", "--small-object-size", "8K", "--small-objects", "6",
        "-p", "2")


def tables(out: str) -> list[dict[str, list[str]]]:
    """Every table in the output: first cell -> the other cells (the header row included)."""
    found: list[dict[str, list[str]]] = []
    current: dict[str, list[str]] | None = None
    for line in out.splitlines():
        if line.startswith("+"):
            if current is None:
                current = {}
                found.append(current)
            continue
        if line.startswith("|") and current is not None:
            cells = [c.strip() for c in line.strip("|").split("|")]
            current[cells[0] if len(cells) == 3 and cells[0] not in ("basic", "sync") else cells[1]] = cells
        else:
            current = None
    return found


def perf_checks(perf: dict[str, list[str]], not_supported: tuple[str, ...] = ()) -> None:
    assert list(perf)[1:] == list(PERF)
    for item in PERF:
        value, cost = perf[item][1:]
        if item in not_supported:
            assert (value, cost) == ("not support", "not support")
        elif item == "list objects":
            assert re.fullmatch(r"\d+\.\d\d objects/s", value) and re.fullmatch(r"[\d.e+-]+ ms/ 10 objects", cost)
        else:
            unit = "MiB/s" if item in PERF[:2] else "objects/s"
            assert re.fullmatch(rf"\d+\.\d\d {unit}", value), value
            assert re.fullmatch(r"[\d.e+-]+ ms/object", cost), cost


def test_file_bucket(cli, tmp_path):
    bucket = tmp_path / "bucket"
    r = cli("objbench", bucket, *TINY)
    assert r.rc == 0, r.err
    assert r.out.startswith("Start Functional Testing ...\n")
    assert "Start Performance Testing ...\n" in r.out
    assert ("Benchmark finished! block-size: 512 KiB, big-object-size: 2.0 MiB, small-object-size: 8.0 KiB, "
            "small-objects: 6, NumThreads: 2") in r.out
    func, perf = tables(r.out)
    assert [c[1] for c in func.values()][1:] == list(CHECKS)
    results = {c[1]: c[2] for c in func.values()}
    assert {c[0] for c in list(func.values())[1:]} == {"basic", "sync"}
    for name in CHECKS[:11]:
        assert results[name] == "pass", (name, results[name])
    # The file store refuses keys ending with '/' (JuiceFS's makes them directories).
    assert results["put an empty object"] == "pass" or results["put an empty object"].startswith(
        "put `/` suffixed object failed")
    assert results["multipart upload"] == "not support"
    for name in CHECKS[13:]:  # the file-system checks run on a file bucket (as root here)
        assert results[name] == ("pass" if os.getuid() == 0 else "root required"), (name, results[name])
    perf_checks(perf)
    assert os.listdir(bucket) == []  # the benchmark prefix is gone


def test_file_bucket_json(cli, tmp_path):
    r = cli("objbench", tmp_path / "b", *TINY, "--json")
    assert r.rc == 0, r.err
    doc = r.json
    assert doc["storage"] == "file" and doc["bucket"] == f"file://{tmp_path}/b/"
    assert (doc["block_size"], doc["big_object_size"], doc["small_object_size"], doc["small_objects"],
            doc["threads"]) == (512 << 10, 2 << 20, 8 << 10, 6, 2)
    assert [c["test"] for c in doc["functional"]] == list(CHECKS)
    assert all(set(c) == {"category", "test", "result", "status"} for c in doc["functional"])
    assert [x["item"] for x in doc["results"]] == list(PERF)
    put = doc["results"][0]
    assert put["name"] == "put" and put["unit"] == "MiB/s" and put["value"] > 0 and put["cost"] > 0
    assert "Start" not in r.out and "+--" not in r.out


def test_skip_functional_tests_and_thread_cap(cli, tmp_path):
    # 2 big blocks, 6 small objects: 8 threads are reduced to 2, as JuiceFS does.
    r = cli("objbench", tmp_path / "b", "--big-object-size", "1M", "--block-size", "512K", "--small-object-size",
            "4K", "--small-objects", "6", "-p", "8", "--skip-functional-tests", "--json")
    assert r.rc == 0, r.err
    assert r.json["functional"] is None and r.json["threads"] == 2
    assert "reduced to 2" in r.err


@pytest.fixture
def s3_bucket(s3_server):
    """A fresh bucket name on the moto server (created by objbench's first check)."""
    return s3_server.bucket_url(f"objbench-{uuid.uuid4().hex[:12]}")


def test_s3_table(cli, s3_server, s3_bucket):
    r = cli("objbench", "--storage", "s3", s3_bucket, "--access-key", s3_server.access_key,
            "--secret-key", s3_server.secret_key, *TINY)
    assert r.rc == 0, r.err
    func, perf = tables(r.out)
    results = {c[1]: c[2] for c in func.values()}
    for name in CHECKS[:13]:  # S3 does it all, multipart included
        assert results[name] == "pass", (name, results[name])
    for name in CHECKS[13:]:
        assert results[name] == "not support"
    perf_checks(perf, not_supported=PERF[7:])
    name = s3_bucket.rsplit("/", 1)[1]
    assert s3_server.client().list_objects_v2(Bucket=name).get("KeyCount", 0) == 0  # cleaned up
    assert s3_server.secret_key not in r.out + r.err


def test_s3_json_credentials_from_env(cli, s3_server, s3_bucket, monkeypatch):
    monkeypatch.setenv("ACCESS_KEY", s3_server.access_key)
    monkeypatch.setenv("SECRET_KEY", s3_server.secret_key)
    r = cli("objbench", "--storage", "s3", s3_bucket, *TINY, "--skip-functional-tests", "--json")
    assert r.rc == 0, r.err
    doc = r.json
    assert doc["storage"] == "s3" and doc["functional"] is None
    rows = {x["name"]: x for x in doc["results"]}
    assert rows["put"]["value"] > 0 and rows["smallget"]["value"] > 0 and rows["delete"]["value"] > 0
    assert rows["chmod"] == {"item": "change permissions", "name": "chmod", "value": None, "unit": "",
                             "cost": None, "cost_unit": "", "result": "not support"}


def test_unreachable_s3_is_one_line(cli):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = cli("objbench", "--storage", "s3", f"http://127.0.0.1:{port}/bucket", "--access-key", "a",
            "--secret-key", "b", *TINY, "--skip-functional-tests")
    assert_refused(r, "can't create bucket")


# --- bad arguments ---------------------------------------------------------------------------------


def assert_refused(r, needle: str) -> None:
    assert r.rc != 0, (r.out, r.err)
    assert "Traceback" not in r.err
    errors = [ln for ln in r.err.splitlines() if "<ERROR>" in ln]
    assert len(errors) == 1, r.err
    assert needle in errors[0], errors[0]


@pytest.mark.parametrize("argv,needle", [
    (["--small-objects", "0"], '"--small-objects"'),
    (["--small-objects", "x"], '"--small-objects"'),
    (["-p", "0"], '"--threads"'),
    (["--block-size", "0"], '"--block-size"'),
    (["--big-object-size", "abc"], '"big-object-size"'),
    (["--small-object-size", "0"], '"--small-object-size"'),
    (["--storage", "nosuch"], "invalid storage"),
    (["--shards", "x"], "--shards"),
])
def test_bad_flags(cli, tmp_path, argv, needle):
    assert_refused(cli("objbench", tmp_path / "b", *argv), needle)
    assert not (tmp_path / "b").exists()


def test_missing_bucket(cli):
    assert_refused(cli("objbench"), "BUCKET is required")


def test_url_for_file_storage_is_confirmed(cli, tmp_path):
    r = cli("objbench", "http://127.0.0.1:1/bucket", stdin="n\n")
    assert_refused(r, "Aborted")
    assert "doesn't look like a file path" in r.out


def test_sharded_file_buckets(cli, tmp_path):
    r = cli("objbench", f"{tmp_path}/b-%d", "--shards", "2", *TINY, "--skip-functional-tests", "--json")
    assert r.rc == 0, r.err
    assert r.json["bucket"].startswith("shard2://")
    assert all(x["value"] for x in r.json["results"][:7])
    assert sorted(os.listdir(tmp_path)) == ["b-0", "b-1"]
    assert os.listdir(tmp_path / "b-0") == os.listdir(tmp_path / "b-1") == []
