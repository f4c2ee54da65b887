"""Bad input: one clear error line, a non-zero exit, no traceback, quickly, and nothing written."""

from __future__ import annotations

import json
import time

import pytest

from pyjuicefs.meta import new_engine


def stored(url: str) -> bytes | None:
    e = new_engine(url)
    try:
        return e.load_setting()
    finally:
        e.close()


def assert_refused(r, *needles: str) -> None:
    assert r.rc != 0, (r.out, r.err)
    assert "Traceback" not in r.err
    lines = r.error_lines()
    assert len(lines) == 1, r.err
    for n in needles:
        assert n in lines[0], lines[0]


# --- arguments (checked before anything is contacted) ---------------------------------------------


@pytest.mark.parametrize("argv,needle", [
    (["--block-size", "32K"], "invalid block size"),
    (["--block-size", "32M"], "invalid block size"),
    (["--block-size", "4194304"], "invalid block size"),
    (["--block-size", "abc"], 'invalid value "abc" for "block-size"'),
    (["--shards", "300"], "invalid shards: 300"),
    (["--shards", "-1"], "invalid shards"),
    (["--shards", "x"], "--shards"),
    (["--compress", "gzip"], "unsupported compress algorithm"),
    (["--trash-days", "-1"], "invalid trash days"),
    (["--capacity", "xyz"], '"capacity"'),
    (["--inodes", "-5"], "--inodes"),
    (["--storage", "nosuch"], "invalid storage"),
])
def test_bad_format_flags(cli, new_meta_url, bucket, argv, needle):
    url = new_meta_url("sqlite3")
    r = cli("format", "--bucket", bucket, *argv, url, "myjfs")
    assert_refused(r, needle)
    assert stored(url) is None


@pytest.mark.parametrize("name", ["My_JFS", "ab", "-abc", "a" * 64])
def test_bad_volume_name(cli, new_meta_url, bucket, name):
    url = new_meta_url("sqlite3")
    assert_refused(cli("format", "--bucket", bucket, "--", url, name), "invalid name")
    assert stored(url) is None


# --- metadata URLs and servers ------------------------------------------------------------------


@pytest.mark.parametrize("cmd", [["status"], ["config"], ["format", "--bucket", "/tmp/unused-bucket"]])
@pytest.mark.parametrize("url,needle", [
    ("foo://bar", "unknown metadata engine 'foo'"),
    ("redis://[bad", ""),
    ("redis://127.0.0.1:1/1", ""),
])
def test_bad_meta_url(cli, cmd, url, needle):
    argv = [*cmd, url] + (["myjfs"] if cmd[0] == "format" else [])
    t0 = time.monotonic()
    r = cli(*argv)
    assert time.monotonic() - t0 < 15
    assert_refused(r, needle)


def test_redis_wrong_password(cli, password_redis, bucket):
    t0 = time.monotonic()
    r = cli("format", "--bucket", bucket, password_redis.url(1, "wrong"), "myjfs")
    assert time.monotonic() - t0 < 15
    assert_refused(r)
    assert "wrong" not in r.error_lines()[0].split("redis://")[-1].split("@")[0]
    assert stored(password_redis.url(1)) is None
    assert_refused(cli("status", password_redis.url(1, "")))


def test_redis_password_ok(cli, password_redis, bucket):
    url = password_redis.url(2)
    assert cli("format", "--bucket", bucket, url, "myjfs").rc == 0
    r = cli("status", url)
    assert r.rc == 0 and r.json["Setting"]["Name"] == "myjfs"
    assert "s3cret" not in r.err


def test_postgres_wrong_password(cli, postgres_server, bucket):
    postgres_server.create_db("pwtest")
    good = postgres_server.url("pwtest")
    bad = good.replace(":pass@", ":wrong@")
    assert bad != good
    t0 = time.monotonic()
    r = cli("format", "--bucket", bucket, bad, "myjfs")
    assert time.monotonic() - t0 < 15
    assert_refused(r)
    assert ":wrong@" not in r.err


# --- buckets -------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["under-file", "proc"])
def test_unusable_file_bucket(cli, new_meta_url, tmp_path, where):
    if where == "under-file":
        f = tmp_path / "regular"
        f.write_text("x")
        b = f / "bucket"
    else:
        b = "/proc/pyjuicefs-test/bucket"
    url = new_meta_url("sqlite3")
    t0 = time.monotonic()
    r = cli("format", "--bucket", b, url, "myjfs")
    assert time.monotonic() - t0 < 15
    assert_refused(r, "is not configured correctly")
    assert stored(url) is None


def test_unreachable_s3(cli, new_meta_url):
    url = new_meta_url("sqlite3")
    t0 = time.monotonic()
    r = cli("format", "--storage", "s3", "--bucket", "http://127.0.0.1:1/bucket", "--access-key", "a",
            "--secret-key", "b", url, "myjfs")
    assert time.monotonic() - t0 < 30
    assert_refused(r)
    assert "Traceback" not in r.err and "secret" not in r.err.lower().replace("secret-key", "")
    assert stored(url) is None


# --- volumes that are missing or too new ---------------------------------------------------------


@pytest.mark.parametrize("cmd", ["status", "config"])
def test_not_formatted(cli, new_meta_url, cmd):
    assert_refused(cli(cmd, new_meta_url("sqlite3")), "database is not formatted")


@pytest.mark.parametrize("field,value,needle", [
    ("MetaVersion", 2, "incompatible metadata version: 2"),
    ("MinClientVersion", "9.0.0", "allowed minimum version: 9.0.0"),
    ("MaxClientVersion", "1.0.0", "allowed maximum version: 1.0.0"),
])
def test_status_refuses_newer_settings(cli, new_meta_url, bucket, field, value, needle):
    url = new_meta_url("sqlite3")
    assert cli("format", "--bucket", bucket, url, "myjfs").rc == 0
    e = new_engine(url)
    try:
        d = json.loads(e.load_setting())
        d[field] = value
        e.save_setting(json.dumps(d).encode())
    finally:
        e.close()
    assert_refused(cli("status", url), needle)
    # config shows (and can repair) such a volume, as JuiceFS does
    assert cli("config", url).rc == 0


# --- end to end, in a child process ---------------------------------------------------------------


def test_subprocess_errors_are_one_line(subproc, new_meta_url, tmp_path):
    url = new_meta_url("sqlite3")
    for argv, needle in [
        (["format", "--bucket", tmp_path / "b", "--block-size", "1G", url, "myjfs"], "invalid block size"),
        (["format", "--bucket", tmp_path / "b", url, "Bad_Name"], "invalid name"),
        (["status", url], "database is not formatted"),
        (["status", "nosuch://x"], "unknown metadata engine"),
        (["config", "redis://127.0.0.1:1/1"], ""),
    ]:
        r = subproc(*argv)
        assert r.rc == 1, (argv, r.err)
        assert "Traceback" not in r.err
        errs = [ln for ln in r.err.splitlines() if "<ERROR>" in ln]
        assert len(errs) == 1 and needle in errs[0], (argv, r.err)
        assert r.out == ""


def test_subprocess_format_then_status(subproc, new_meta_url, tmp_path):
    url = new_meta_url("sqlite3")
    r = subproc("format", "--bucket", tmp_path / "b", url, "myjfs")
    assert r.rc == 0, r.err
    r = subproc("status", url)
    assert r.rc == 0, r.err
    assert json.loads(r.out)["Setting"]["Name"] == "myjfs"
