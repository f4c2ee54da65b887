"""Bucket URLs of the S3-compatible kinds, parsed as JuiceFS 1.4 does (pkg/object/s3.go, minio.go,
oss.go), without importing boto3.

    s3     https://BUCKET.s3.REGION.amazonaws.com   AWS, virtual host; region from the host
           https://s3.REGION.amazonaws.com/BUCKET   AWS, path
           http://HOST:PORT/BUCKET                  any S3-compatible endpoint, path style
           https://BUCKET.HOST                      any S3-compatible endpoint named by virtual host
           BUCKET                                   AWS; region from AWS_REGION/AWS_DEFAULT_REGION
    minio  http://HOST:PORT/BUCKET                  path style; region ?region=, MINIO_REGION
    oss    https://BUCKET.oss-REGION.aliyuncs.com   Aliyun OSS through its S3-compatible API

Compatible endpoints use path-style requests unless JFS_S3_VHOST_STYLE is set, as in JuiceFS.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from ..errors import UserError

AWS_DEFAULT_REGION = "us-east-1"

_VPC = re.compile(r"^.*\.(.*)\.vpce\.amazonaws\.com")
_ORACLE = re.compile(r".*\.compat.objectstorage\.(.*)\.oraclecloud\.com")
_OVH = re.compile(r"^s3\.(\w*)(\.\w*)?\.cloud\.ovh\.net$")
# S3 bucket names: 3-63 of lower-case letters, digits, dots and hyphens (compatible stores are laxer).
_BUCKET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(slots=True, frozen=True)
class S3Location:
    kind: str
    bucket: str
    region: str
    endpoint_url: str | None  # None: AWS, resolved from the region by botocore
    addressing_style: str  # "path", "virtual" or "auto"
    verify_tls: bool = True

    def __str__(self) -> str:
        if self.endpoint_url:
            host = self.endpoint_url.split("://", 1)[-1]
            return f"{self.kind}://{host}/{self.bucket}/"
        return f"{self.kind}://{self.bucket}/"


def _vhost_style() -> bool:
    v = os.environ.get("JFS_S3_VHOST_STYLE", "")
    return v not in ("", "0", "false")


def _env_region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or ""


def aws_region_of(endpoint: str) -> str:
    """Region named by an AWS endpoint host: s3.us-west-2.amazonaws.com → us-west-2."""
    if endpoint.startswith(("s3-", "s3.")):
        endpoint = endpoint[3:]
    if endpoint.startswith("dualstack"):
        endpoint = endpoint[len("dualstack."):]
    if endpoint == "amazonaws.com":
        endpoint = AWS_DEFAULT_REGION + "." + endpoint
    region = endpoint.split(".")[0]
    return AWS_DEFAULT_REGION if region == "external-1" else region


def _split(raw: str, default_scheme: str) -> tuple[str, str, str, dict[str, list[str]]]:
    """(scheme, host, path, query) of a bucket URL; UserError if it is not one."""
    url = raw.strip()
    if "://" not in url:
        url = f"{default_scheme}://{url}"
    url = url.strip("/")
    try:
        u = urlsplit(url)
        _ = u.port  # validates the port
    except ValueError as e:
        raise UserError(f"invalid bucket URL {raw!r}: {e}") from None
    if u.scheme.lower() not in ("http", "https"):
        raise UserError(f"invalid bucket URL {raw!r}: scheme must be http or https")
    if not u.hostname:
        raise UserError(f"invalid bucket URL {raw!r}: no host")
    return u.scheme.lower(), u.netloc, u.path, parse_qs(u.query)


def _check_bucket(name: str, raw: str) -> str:
    if not name or not _BUCKET.match(name):
        raise UserError(f"invalid bucket URL {raw!r}: no valid bucket name in it")
    return name


def _tls(query: dict[str, list[str]], raw: str) -> bool:
    v = (query.get("tls-insecure-skip-verify") or [""])[0].lower()
    if v in ("", "false", "0", "f"):
        return True
    if v in ("true", "1", "t"):
        return False
    raise UserError(f"invalid bucket URL {raw!r}: tls-insecure-skip-verify={v!r} is not a boolean")


def parse_s3(raw: str) -> S3Location:
    """`--storage s3` bucket URL."""
    if "://" not in raw and "." in raw and not raw.rstrip("/").endswith(".amazonaws.com"):
        scheme_default = "http"
    else:
        scheme_default = "https"
    scheme, host, path, query = _split(raw, scheme_default)
    hostname = host.split(":")[0]
    region = ""
    endpoint: str | None = None
    style = "path" if not _vhost_style() else "virtual"
    if path:
        # [ENDPOINT]/[BUCKET]
        bucket = path.split("/")[1]
        if ".amazonaws.com" in hostname:
            region = aws_region_of(hostname)
            style = "auto"
        else:
            endpoint = f"{scheme}://{host}"
    else:
        parts = host.split(".", 1)
        if len(parts) == 1:
            # A bare bucket name: AWS, region from the environment (botocore follows redirects).
            bucket = parts[0]
            style = "auto"
        elif ".amazonaws.com" in hostname:
            m = _VPC.match(hostname)
            if m:
                bucket, endpoint, region = parts[0], f"{scheme}://{parts[1]}", m[1]
            elif ".s3" in hostname:
                # BUCKET.s3.REGION.amazonaws.com[.cn] or BUCKET.s3-REGION.amazonaws.com
                bucket, rest = hostname.split(".s3", 1)
                region = aws_region_of("s3" + rest)
                style = "auto"
            else:
                bucket, region, style = parts[0], aws_region_of(hostname.split(".", 1)[1]), "auto"
        else:
            bucket, ep = parts
            endpoint = f"{scheme}://{ep}"
            for rx in (_ORACLE, _OVH):
                m = rx.match(ep)
                if m:
                    region = m[1]
                    break
    region = region or _env_region() or AWS_DEFAULT_REGION
    return S3Location("s3", _check_bucket(bucket, raw), region, endpoint, style, _tls(query, raw))


def parse_minio(raw: str) -> S3Location:
    """`--storage minio` bucket URL: http://HOST:PORT/BUCKET."""
    scheme, host, path, query = _split(raw, "http")
    if len(path) < 2:
        raise UserError(f"no bucket name provided in {raw!r} (expected http://HOST:PORT/BUCKET)")
    bucket = path[1:]
    if "/" in bucket and bucket.startswith("minio/"):
        bucket = bucket[len("minio/"):]
    bucket = bucket.split("/")[0]
    region = (query.get("region") or [""])[0] or os.environ.get("MINIO_REGION", "") or AWS_DEFAULT_REGION
    style = "virtual" if _vhost_style() else "path"
    return S3Location("minio", _check_bucket(bucket, raw), region, f"{scheme}://{host}", style, _tls(query, raw))


def parse_oss(raw: str) -> S3Location:
    """`--storage oss` bucket URL: https://BUCKET.oss-REGION[-internal].aliyuncs.com."""
    scheme, host, _path, query = _split(raw, "https")
    parts = host.split(".", 1)
    if len(parts) < 2 or "." not in parts[1]:
        raise UserError(
            f"invalid bucket URL {raw!r}: expected https://BUCKET.oss-REGION.aliyuncs.com "
            "(finding the endpoint of a bare bucket name is not supported)"
        )
    bucket, domain = parts
    region = os.environ.get("ALICLOUD_REGION_ID", "")
    if not region:
        region = domain.split(".", 1)[0]
        region = region.removeprefix("oss-").removesuffix("-internal").removesuffix("-vpc")
    if not region:
        raise UserError(f"invalid bucket URL {raw!r}: no region in {domain!r}")
    # OSS serves buckets by virtual host only.
    return S3Location("oss", _check_bucket(bucket, raw), region, f"{scheme}://{domain}", "virtual", _tls(query, raw))


PARSERS = {"s3": parse_s3, "minio": parse_minio, "oss": parse_oss}


def parse_bucket_url(kind: str, raw: str) -> S3Location:
    if not raw or not raw.strip():
        raise UserError(f"--bucket is required for --storage {kind}")
    return PARSERS[kind](raw)
