"""The S3 store's failure modes against real servers: a missing bucket, an unreachable endpoint,
rejected credentials (a moto server that enforces IAM), and where credentials come from."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid

import pytest

from pyjuicefs.errors import ObjectNotFound, StorageAuthError, TransientStorageError
from pyjuicefs.format import Format
from pyjuicefs.object import create_storage, new_store
from pyjuicefs.object.retry import Backoff


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def auth_s3():
    """A moto server that checks credentials; yields (endpoint, access_key, secret_key) of a user
    allowed to use S3. Its first three requests (making that user) are let through unsigned."""
    port = _free_port()
    env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="3", AWS_EC2_METADATA_DISABLED="true")
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        endpoint = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)
        import boto3

        iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1",
                           aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
        iam.create_user(UserName="jfs")
        iam.put_user_policy(UserName="jfs", PolicyName="s3", PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
        key = iam.create_access_key(UserName="jfs")["AccessKey"]
        yield endpoint, key["AccessKeyId"], key["SecretAccessKey"]
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(autouse=True)
def _no_credential_env(monkeypatch):
    for k in ("ACCESS_KEY", "SECRET_KEY", "SESSION_TOKEN", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
              "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(k, raising=False)


def _fmt(bucket: str, ak: str = "", sk: str = "", storage: str = "s3") -> Format:
    return Format(Name="vol", Storage=storage, Bucket=bucket, AccessKey=ak, SecretKey=sk)


def test_missing_bucket_is_a_clear_error(s3_server):
    name = f"missing-{uuid.uuid4().hex[:8]}"
    st = create_storage(_fmt(s3_server.bucket_url(name), s3_server.access_key, s3_server.secret_key))
    t = time.monotonic()
    for op in (lambda: st.put("k", b"v"), lambda: st.get("k"), lambda: st.list()):
        with pytest.raises(ObjectNotFound) as ei:
            op()
        assert name in str(ei.value) and "does not exist" in str(ei.value)
    assert time.monotonic() - t < 5  # not retried


def test_create_makes_the_bucket_and_is_idempotent(s3_server):
    url = s3_server.bucket_url(f"made-{uuid.uuid4().hex[:8]}")
    st = new_store("minio", url, s3_server.access_key, s3_server.secret_key)
    st.create()
    st.create()
    st.put("k", b"v")
    assert st.get("k") == b"v"
    assert str(st) == f"minio://{url.split('://')[1]}/"


def test_unreachable_endpoint_fails_fast():
    url = f"http://127.0.0.1:{_free_port()}/bucket"  # nothing listens there
    st = new_store("s3", url, "ak", "sk", get_timeout=2, put_timeout=2)
    t = time.monotonic()
    with pytest.raises(TransientStorageError) as ei:
        st.get("k")
    assert "127.0.0.1" in str(ei.value)
    sleeps: list[float] = []
    wrapped = create_storage(_fmt(url, "ak", "sk"), retries=2, get_timeout=2, put_timeout=2,
                             backoff=Backoff(base=0.01, sleep=sleeps.append))
    with pytest.raises(TransientStorageError):
        wrapped.put("k", b"v")
    assert len(sleeps) == 2
    assert time.monotonic() - t < 10


def test_wrong_credentials_are_auth_errors_and_not_retried(auth_s3):
    endpoint, ak, sk = auth_s3
    sleeps: list[float] = []
    st = create_storage(_fmt(f"{endpoint}/authbk", ak, "wrong-secret"), backoff=Backoff(sleep=sleeps.append))
    with pytest.raises(StorageAuthError) as ei:
        st.create()
    assert "wrong-secret" not in str(ei.value)
    st = create_storage(_fmt(f"{endpoint}/authbk", "AKIANOSUCHKEY", "x"), backoff=Backoff(sleep=sleeps.append))
    for op in (st.create, lambda: st.put("k", b"v"), lambda: st.get("k"), lambda: st.head("k")):
        with pytest.raises(StorageAuthError):
            op()
    assert sleeps == []


def test_credentials_flag_over_env_over_default(auth_s3, monkeypatch):
    endpoint, ak, sk = auth_s3
    bucket = f"{endpoint}/credbk"
    monkeypatch.setenv("ACCESS_KEY", ak)
    monkeypatch.setenv("SECRET_KEY", sk)
    st = create_storage(_fmt(bucket))  # from the environment
    st.create()
    st.put("k", b"env")
    assert st.get("k") == b"env"
    with pytest.raises(StorageAuthError):  # the flag wins over the environment
        create_storage(_fmt(bucket, "AKIAFLAG", "flag-secret")).get("k")
    monkeypatch.delenv("ACCESS_KEY")
    monkeypatch.delenv("SECRET_KEY")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ak)  # boto's default chain
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", sk)
    assert create_storage(_fmt(bucket)).get("k") == b"env"


def test_encrypted_secret_in_settings_is_decrypted(auth_s3):
    endpoint, ak, sk = auth_s3
    fmt = _fmt(f"{endpoint}/encbk", ak, sk)
    fmt.UUID = str(uuid.uuid4())
    fmt.encrypt()
    assert fmt.KeyEncrypted and fmt.SecretKey != sk
    st = create_storage(fmt)
    st.create()
    st.put("k", b"v")
    assert st.get("k") == b"v"
    assert sk not in str(st)


def test_timeouts_are_configured():
    st = new_store("s3", "http://127.0.0.1:1/bk", "ak", "sk", get_timeout=7, put_timeout=33)
    assert st._get.meta.config.read_timeout == 7
    assert st._put.meta.config.read_timeout == 33
    assert st._put.meta.config.connect_timeout == 10


def _client_error(code: str, status: int, op: str = "GetObject"):
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code, "Message": f"msg {code}"},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, op)


@pytest.mark.parametrize("code,status,want", [
    ("NoSuchKey", 404, ObjectNotFound),
    ("404", 404, ObjectNotFound),
    ("NoSuchBucket", 404, ObjectNotFound),
    ("AccessDenied", 403, StorageAuthError),
    ("403", 403, StorageAuthError),
    ("InvalidAccessKeyId", 403, StorageAuthError),
    ("SignatureDoesNotMatch", 403, StorageAuthError),
    ("SlowDown", 503, TransientStorageError),
    ("ServiceUnavailable", 503, TransientStorageError),
    ("InternalError", 500, TransientStorageError),
    ("BadGateway", 502, TransientStorageError),
    ("RequestTimeout", 400, TransientStorageError),
    ("TooManyRequests", 429, TransientStorageError),
])
def test_error_mapping(code, status, want):
    from pyjuicefs.errors import StorageError

    st = new_store("s3", "http://127.0.0.1:1/mybk", "ak", "sk")
    err = st._map_error(_client_error(code, status), "get", "k")
    assert type(err) is want and isinstance(err, StorageError)
    if code == "NoSuchBucket":
        assert "'mybk'" in str(err)


def test_network_error_mapping():
    from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError

    st = new_store("s3", "http://127.0.0.1:1/mybk", "ak", "sk")
    for e in (ReadTimeoutError(endpoint_url="http://127.0.0.1:1"), ConnectTimeoutError(endpoint_url="x"),
              EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), ConnectionResetError(104, "reset")):
        assert isinstance(st._map_error(e, "get", "k"), TransientStorageError)


@pytest.mark.juicefs
@pytest.mark.parametrize("storage", ["s3", "minio"])
def test_reads_what_the_reference_binary_wrote(s3_server, juicefs_bin, tmp_path, storage):
    """The same --storage/--bucket settings reach the same objects from both clients."""
    from pyjuicefs.object.names import parse_block_key

    url = s3_server.bucket_url(f"ref-{storage}-{uuid.uuid4().hex[:8]}")
    meta = f"sqlite3://{tmp_path}/meta.db"
    keys = ["--access-key", s3_server.access_key, "--secret-key", s3_server.secret_key]
    # JuiceFS asks moto for the bucket with LocationConstraint us-east-1, which moto refuses: make it here.
    new_store(storage, url, s3_server.access_key, s3_server.secret_key).create()
    subprocess.run([juicefs_bin, "format", "--storage", storage, "--bucket", url, *keys, meta, "vol"],
                   check=True, capture_output=True, timeout=60)
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"0123456789" * 1000)
    subprocess.run([juicefs_bin, "sync", f"{src}/", "jfs://JFSMETA/"], check=True, capture_output=True,
                   timeout=120, env=dict(os.environ, JFSMETA=meta))
    # The settings as stored (`status` would hide the secret key, which the reference encrypts).
    import sqlite3

    with sqlite3.connect(tmp_path / "meta.db") as db:
        raw = db.execute("SELECT value FROM jfs_setting WHERE name='format'").fetchone()[0]
    fmt = Format.from_json(raw)
    assert fmt.Bucket == url and fmt.Storage == storage and fmt.KeyEncrypted
    st = create_storage(fmt, retries=0)
    assert st.get("juicefs_uuid").decode() == fmt.UUID
    blocks = [o for o in st.list_all("chunks/")]
    assert len(blocks) == 1 and parse_block_key(blocks[0].key).size == 10000 == blocks[0].size
