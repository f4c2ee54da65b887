"""Bucket URLs of the S3-compatible kinds, parsed as JuiceFS 1.4 parses them."""

from __future__ import annotations

import pytest

from pyjuicefs.errors import UserError
from pyjuicefs.object.s3url import parse_bucket_url, parse_minio, parse_oss, parse_s3


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for k in ("AWS_REGION", "AWS_DEFAULT_REGION", "JFS_S3_VHOST_STYLE", "MINIO_REGION", "ALICLOUD_REGION_ID"):
        monkeypatch.delenv(k, raising=False)


@pytest.mark.parametrize("url,bucket,region,endpoint,style", [
    # AWS virtual host: region from the host, endpoint left to botocore
    ("https://mybucket.s3.us-west-2.amazonaws.com", "mybucket", "us-west-2", None, "auto"),
    ("https://mybucket.s3-eu-west-1.amazonaws.com/", "mybucket", "eu-west-1", None, "auto"),
    ("https://mybucket.s3.amazonaws.com", "mybucket", "us-east-1", None, "auto"),
    ("https://mybucket.s3.dualstack.ap-east-1.amazonaws.com", "mybucket", "ap-east-1", None, "auto"),
    ("mybucket.s3.us-east-2.amazonaws.com", "mybucket", "us-east-2", None, "auto"),
    # AWS path style
    ("https://s3.ap-south-1.amazonaws.com/bk", "bk", "ap-south-1", None, "auto"),
    ("https://s3.amazonaws.com/bk/some/dir", "bk", "us-east-1", None, "auto"),
    # S3-compatible path style (MinIO, Ceph RGW, moto): http by default without a scheme
    ("http://127.0.0.1:9000/bk", "bk", "us-east-1", "http://127.0.0.1:9000", "path"),
    ("127.0.0.1:9000/bk", "bk", "us-east-1", "http://127.0.0.1:9000", "path"),
    ("https://rgw.example.com/data-1/", "data-1", "us-east-1", "https://rgw.example.com", "path"),
    # S3-compatible virtual host
    ("https://bk.storage.example.com", "bk", "us-east-1", "https://storage.example.com", "path"),
    ("http://bk.minio.local:9000", "bk", "us-east-1", "http://minio.local:9000", "path"),
    ("https://bk.s3.de.io.cloud.ovh.net", "bk", "de", "https://s3.de.io.cloud.ovh.net", "path"),
    ("https://bk.ns.compat.objectstorage.eu-frankfurt-1.oraclecloud.com", "bk", "eu-frankfurt-1",
     "https://ns.compat.objectstorage.eu-frankfurt-1.oraclecloud.com", "path"),
    # a bare bucket name: AWS
    ("mybucket", "mybucket", "us-east-1", None, "auto"),
])
def test_s3_forms(url, bucket, region, endpoint, style):
    loc = parse_s3(url)
    assert (loc.bucket, loc.region, loc.endpoint_url, loc.addressing_style) == (bucket, region, endpoint, style)
    assert loc.verify_tls


def test_s3_region_from_environment(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")
    assert parse_s3("http://127.0.0.1:9000/bk").region == "eu-central-1"
    assert parse_s3("mybucket").region == "eu-central-1"
    monkeypatch.setenv("AWS_REGION", "ap-northeast-1")
    assert parse_s3("mybucket").region == "ap-northeast-1"
    # a region in the host wins
    assert parse_s3("https://b.s3.us-west-1.amazonaws.com").region == "us-west-1"


def test_vhost_style_switch(monkeypatch):
    monkeypatch.setenv("JFS_S3_VHOST_STYLE", "true")
    assert parse_s3("http://bk.minio.local:9000").addressing_style == "virtual"
    assert parse_minio("http://127.0.0.1:9000/bk").addressing_style == "virtual"


def test_tls_skip_verify():
    assert not parse_s3("https://rgw.example.com/bk?tls-insecure-skip-verify=true").verify_tls
    assert parse_s3("https://rgw.example.com/bk?tls-insecure-skip-verify=false").verify_tls


@pytest.mark.parametrize("url,bucket,region,endpoint", [
    ("https://mybk.oss-cn-hangzhou.aliyuncs.com", "mybk", "cn-hangzhou", "https://oss-cn-hangzhou.aliyuncs.com"),
    ("mybk.oss-cn-beijing-internal.aliyuncs.com", "mybk", "cn-beijing", "https://oss-cn-beijing-internal.aliyuncs.com"),
    ("http://jfs-data.oss-us-west-1.aliyuncs.com/", "jfs-data", "us-west-1", "http://oss-us-west-1.aliyuncs.com"),
    ("https://b.oss-cn-shanghai-vpc.aliyuncs.com", "b", "cn-shanghai", "https://oss-cn-shanghai-vpc.aliyuncs.com"),
])
def test_oss(url, bucket, region, endpoint):
    loc = parse_oss(url)
    assert (loc.bucket, loc.region, loc.endpoint_url, loc.addressing_style) == (bucket, region, endpoint, "virtual")
    assert str(loc) == f"oss://{endpoint.split('://')[1]}/{bucket}/"


def test_oss_region_env(monkeypatch):
    monkeypatch.setenv("ALICLOUD_REGION_ID", "cn-qingdao")
    assert parse_oss("https://b.oss-cn-hangzhou.aliyuncs.com").region == "cn-qingdao"


@pytest.mark.parametrize("url,bucket,region,endpoint", [
    ("http://127.0.0.1:9000/bk", "bk", "us-east-1", "http://127.0.0.1:9000"),
    ("minio.local:9000/bk/sub/dir", "bk", "us-east-1", "http://minio.local:9000"),
    ("http://h:9000/minio/bk?region=eu-1", "bk", "eu-1", "http://h:9000"),
    ("https://h/bk", "bk", "us-east-1", "https://h"),
])
def test_minio(url, bucket, region, endpoint):
    loc = parse_minio(url)
    assert (loc.bucket, loc.region, loc.endpoint_url, loc.addressing_style) == (bucket, region, endpoint, "path")


@pytest.mark.parametrize("kind,url", [
    ("s3", "ftp://host/bucket"),
    ("s3", "http://:9000/bucket"),
    ("s3", "http://host:port/bucket"),
    ("s3", "http://host:9000/bad bucket"),
    ("s3", ""),
    ("s3", "https://rgw.example.com/bk?tls-insecure-skip-verify=maybe"),
    ("minio", "http://127.0.0.1:9000"),
    ("minio", "http://127.0.0.1:9000/"),
    ("oss", "https://aliyuncs.com"),
    ("oss", "mybucket"),
])
def test_bad_urls(kind, url):
    with pytest.raises(UserError) as ei:
        parse_bucket_url(kind, url)
    msg = str(ei.value)
    assert "\n" not in msg and (url.strip() in msg or "--bucket" in msg)
