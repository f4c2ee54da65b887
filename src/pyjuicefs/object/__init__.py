"""Object storage: the contract (base.py), the stores, and create_storage(), the one place where a
volume's stores are stacked the way JuiceFS stacks them (cmd/mount.go createStorage):

    RetryingStorage( WithPrefix( [ShardedStorage(] store(s) [)], "<name>/" ) )

Stores are imported lazily by kind, so importing this package never imports boto3.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING

from ..errors import UserError
from .base import ObjectInfo, ObjectStorage
from .prefix import WithPrefix
from .retry import Backoff, RetryingStorage
from .sharding import ShardedStorage, shard_name

if TYPE_CHECKING:
    from ..format import Format

__all__ = [
    "ObjectInfo", "ObjectStorage", "STORAGE_KINDS", "create_storage", "new_store", "default_bucket",
    "normalize_bucket", "resolve_credentials",
]

# kind -> (module, what the bucket looks like). s3-compatible kinds share one implementation.
STORAGE_KINDS: dict[str, tuple[str, str]] = {
    "file": ("file", "a local directory, e.g. /var/jfs/"),
    "s3": ("s3", "https://BUCKET.s3.REGION.amazonaws.com or http://HOST:PORT/BUCKET"),
    "minio": ("s3", "http://HOST:PORT/BUCKET"),
    "oss": ("s3", "https://BUCKET.oss-REGION.aliyuncs.com"),
    "mem": ("mem", "any name (objects live in this process only)"),
}


def _kind(storage: str) -> str:
    kind = (storage or "file").lower()
    if kind not in STORAGE_KINDS:
        raise UserError(f"invalid storage {storage!r}: supported kinds are {', '.join(STORAGE_KINDS)}")
    return kind


def default_bucket() -> str:
    """JuiceFS's default --bucket for `file`: /var/jfs/ for root, ~/.juicefs/local/ otherwise."""
    if hasattr(os, "getuid") and os.getuid() == 0:
        return "/var/jfs/"
    return os.path.join(os.path.expanduser("~"), ".juicefs", "local") + "/"


def normalize_bucket(storage: str, bucket: str) -> str:
    """The bucket as `format` stores it: for `file`, an absolute path ending with '/'."""
    kind = _kind(storage)
    if kind != "file":
        return bucket
    if not bucket:
        return default_bucket()
    if bucket.startswith("file://"):
        bucket = bucket[len("file://"):]
    return os.path.abspath(os.path.expanduser(bucket)) + "/"


def resolve_credentials(access_key: str = "", secret_key: str = "", session_token: str = "") -> tuple[str, str, str]:
    """Flag > ACCESS_KEY/SECRET_KEY/SESSION_TOKEN environment > (empty: the store's default chain)."""
    return (access_key or os.environ.get("ACCESS_KEY", ""),
            secret_key or os.environ.get("SECRET_KEY", ""),
            session_token or os.environ.get("SESSION_TOKEN", ""))


def new_store(storage: str, bucket: str, access_key: str = "", secret_key: str = "", session_token: str = "",
              *, get_timeout: float = 60, put_timeout: float = 60) -> ObjectStorage:
    """One bare store of a kind (no prefix, sharding or retries)."""
    kind = _kind(storage)
    if kind == "file":
        from .file import FileStorage

        return FileStorage(normalize_bucket(kind, bucket))
    if kind == "mem":
        from .mem import MemStorage

        return MemStorage(bucket)
    from .s3url import parse_bucket_url

    loc = parse_bucket_url(kind, bucket)
    if kind == "minio" and not access_key:
        access_key = os.environ.get("MINIO_ACCESS_KEY", "")
        secret_key = secret_key or os.environ.get("MINIO_SECRET_KEY", "")
    if kind == "oss" and not access_key:
        access_key = os.environ.get("ALICLOUD_ACCESS_KEY_ID", "")
        secret_key = os.environ.get("ALICLOUD_ACCESS_KEY_SECRET", "")
        session_token = session_token or os.environ.get("SECURITY_TOKEN", "")
    try:
        s3 = importlib.import_module(".s3", __name__)
    except ImportError as e:
        raise UserError(f"--storage {kind} needs boto3: pip install boto3 ({e})") from None
    return s3.S3Storage(loc, access_key, secret_key, session_token,
                        get_timeout=get_timeout, put_timeout=put_timeout)


def create_storage(fmt: "Format", *, retries: int = 10, get_timeout: float = 60, put_timeout: float = 60,
                   backoff: Backoff | None = None) -> ObjectStorage:
    """The data store of a volume: its bucket(s) under `<name>/`, with transient errors retried."""
    if fmt.KeyEncrypted:
        fmt = fmt.copy()
        fmt.decrypt()
    kind = _kind(fmt.Storage)
    ak, sk, token = resolve_credentials(fmt.AccessKey, fmt.SecretKey, fmt.SessionToken)
    bucket = fmt.Bucket or (default_bucket() if kind == "file" else "")
    if fmt.Shards > 1:
        stores: list[ObjectStorage] = [
            new_store(kind, shard_name(bucket, i), ak, sk, token, get_timeout=get_timeout, put_timeout=put_timeout)
            for i in range(fmt.Shards)
        ]
        blob: ObjectStorage = ShardedStorage(stores)
    else:
        blob = new_store(kind, bucket, ak, sk, token, get_timeout=get_timeout, put_timeout=put_timeout)
    blob = WithPrefix(blob, fmt.Name + "/")
    return RetryingStorage(blob, retries, backoff)
