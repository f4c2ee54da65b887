"""S3 and S3-compatible buckets (`--storage s3|minio|oss`) through boto3.

One client per timeout (reads use get_timeout, writes put_timeout); botocore's own retries are off
because the retry wrapper (retry.py) owns retrying. Objects given as file objects are uploaded by a
shared s3transfer manager: multipart above the threshold, each part read once from the stream.
Every botocore/boto3 error leaves this module as a pyjuicefs StorageError (see _map_error).
"""

from __future__ import annotations

import io
import logging
import threading
from typing import BinaryIO

import boto3
import botocore.exceptions as bexc
from botocore import UNSIGNED
from botocore.config import Config
from s3transfer.manager import TransferConfig, TransferManager

from ..errors import ObjectNotFound, StorageAuthError, StorageError, TransientStorageError
from .base import ObjectInfo, ObjectStorage
from .s3url import AWS_DEFAULT_REGION, S3Location

log = logging.getLogger(__name__)

MULTIPART_THRESHOLD = 32 << 20  # JuiceFS blocks (<= 16 MiB) always go in one PUT
PART_SIZE = 16 << 20
UPLOAD_THREADS = 4

_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}
_AUTH = {
    "403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
    "InvalidToken", "TokenRefreshRequired", "AuthorizationHeaderMalformed", "AccountProblem",
    "InvalidSecurity", "AllAccessDisabled",
}
_TRANSIENT = {
    "SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestTimeTooSkewed",
    "InternalError", "ServiceUnavailable", "RequestLimitExceeded", "TooManyRequests",
    "OperationAborted", "503", "500", "502", "504",
}
_EXISTS = {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}


class S3Storage(ObjectStorage):
    def __init__(self, loc: S3Location, access_key: str = "", secret_key: str = "", session_token: str = "",
                 *, get_timeout: float = 60, put_timeout: float = 60, max_connections: int = 64,
                 multipart_threshold: int = MULTIPART_THRESHOLD, part_size: int = PART_SIZE) -> None:
        self.loc = loc
        self.multipart_threshold = multipart_threshold
        self.part_size = max(part_size, 5 << 20)  # S3's smallest part
        self.bucket = loc.bucket
        if access_key:
            session = boto3.session.Session(aws_access_key_id=access_key, aws_secret_access_key=secret_key,
                                            aws_session_token=session_token or None)
        else:
            session = boto3.session.Session()  # the default chain: AWS_* env, ~/.aws, instance roles
        self._get = self._client(session, get_timeout, max_connections, access_key == "anonymous")
        self._put = self._client(session, put_timeout, max_connections, access_key == "anonymous")
        self._tm: TransferManager | None = None
        self._tm_lock = threading.Lock()

    def _client(self, session, timeout: float, max_connections: int, anonymous: bool):
        cfg = Config(
            region_name=self.loc.region,
            signature_version=UNSIGNED if anonymous else "s3v4",
            s3={"addressing_style": self.loc.addressing_style},
            connect_timeout=min(timeout, 10),
            read_timeout=timeout,
            retries={"total_max_attempts": 1, "mode": "standard"},
            max_pool_connections=max_connections,
            # As JuiceFS: no default CRC trailers, which many S3-compatible stores reject.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            user_agent_extra="pyjuicefs",
        )
        return session.client("s3", endpoint_url=self.loc.endpoint_url, config=cfg,
                              verify=self.loc.verify_tls)

    def __str__(self) -> str:
        return str(self.loc)

    # --- errors ----------------------------------------------------------------------------
    def _map_error(self, e: BaseException, op: str, key: str = "") -> StorageError:
        where = f"{op} {self}{key}"
        if isinstance(e, bexc.ClientError):
            err = e.response.get("Error", {})
            code = str(err.get("Code", ""))
            status = int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            msg = err.get("Message") or code
            if code == "NoSuchBucket":
                return ObjectNotFound(
                    f"{where}: bucket {self.bucket!r} does not exist at {self.loc.endpoint_url or 'AWS'}"
                    " (create it, or let `format` create it)")
            if code in _NOT_FOUND or status == 404:
                return ObjectNotFound(f"{where}: no such object")
            if code in _AUTH or status in (401, 403):
                return StorageAuthError(f"{where}: access denied ({code}: {msg}); check the access key "
                                        "and secret key")
            if code in _TRANSIENT or status >= 500 or status == 429:
                return TransientStorageError(f"{where}: {code or status}: {msg}")
            return StorageError(f"{where}: {code or status}: {msg}")
        if isinstance(e, (bexc.NoCredentialsError, bexc.PartialCredentialsError)):
            return StorageAuthError(f"{where}: no credentials: give --access-key/--secret-key or set "
                                    "ACCESS_KEY/SECRET_KEY")
        if isinstance(e, bexc.EndpointConnectionError):
            return TransientStorageError(f"{where}: cannot connect to {self.loc.endpoint_url or 'AWS'}: {e}")
        if isinstance(e, (bexc.ConnectionError, bexc.HTTPClientError, bexc.ResponseStreamingError,
                          bexc.IncompleteReadError, ConnectionError, TimeoutError)):
            return TransientStorageError(f"{where}: {e}")
        if isinstance(e, bexc.ParamValidationError):
            return StorageError(f"{where}: {e}")
        if isinstance(e, bexc.BotoCoreError):
            return StorageError(f"{where}: {e}")
        return StorageError(f"{where}: {type(e).__name__}: {e}")

    # --- bucket ----------------------------------------------------------------------------
    def create(self) -> None:
        kw: dict = {"Bucket": self.bucket}
        if self.loc.endpoint_url is None and self.loc.region != AWS_DEFAULT_REGION:
            kw["CreateBucketConfiguration"] = {"LocationConstraint": self.loc.region}
        try:
            self._put.create_bucket(**kw)
        except bexc.ClientError as e:
            if str(e.response.get("Error", {}).get("Code", "")) in _EXISTS:
                return
            raise self._map_error(e, "create bucket") from None
        except Exception as e:  # noqa: BLE001 - mapped
            raise self._map_error(e, "create bucket") from None

    # --- objects ---------------------------------------------------------------------------
    def put(self, key: str, data: bytes | BinaryIO) -> None:
        try:
            if isinstance(data, (bytes, bytearray, memoryview)):
                if len(data) < self.multipart_threshold:
                    self._put.put_object(Bucket=self.bucket, Key=key, Body=bytes(data))
                    return
                data = io.BytesIO(data)
            self._manager().upload(data, self.bucket, key).result()
        except Exception as e:  # noqa: BLE001 - mapped
            raise self._map_error(e, "put", key) from None

    def _manager(self) -> TransferManager:
        with self._tm_lock:
            if self._tm is None:
                cfg = TransferConfig(multipart_threshold=self.multipart_threshold, multipart_chunksize=self.part_size,
                                     max_request_concurrency=UPLOAD_THREADS, max_submission_concurrency=2)
                self._tm = TransferManager(self._put, cfg)
            return self._tm

    def get(self, key: str, off: int = 0, limit: int = -1) -> bytes:
        if off < 0:
            raise ValueError(f"negative offset {off}")
        if limit == 0:
            self.head(key)
            return b""
        kw: dict = {"Bucket": self.bucket, "Key": key}
        if limit > 0:
            kw["Range"] = f"bytes={off}-{off + limit - 1}"
        elif off > 0:
            kw["Range"] = f"bytes={off}-"
        try:
            resp = self._get.get_object(**kw)
            body = resp["Body"]
            try:
                data = body.read()
            finally:
                body.close()
        except bexc.ClientError as e:
            if str(e.response.get("Error", {}).get("Code", "")) == "InvalidRange":
                self.head(key)  # past the end of an existing object: nothing to read
                return b""
            raise self._map_error(e, "get", key) from None
        except Exception as e:  # noqa: BLE001 - mapped
            raise self._map_error(e, "get", key) from None
        expect = resp.get("ContentLength")
        if expect is not None and len(data) != expect:
            raise TransientStorageError(f"get {self}{key}: short read ({len(data)} of {expect} bytes)")
        return data

    def head(self, key: str) -> ObjectInfo:
        try:
            r = self._get.head_object(Bucket=self.bucket, Key=key)
        except Exception as e:  # noqa: BLE001 - mapped
            raise self._map_error(e, "head", key) from None
        return ObjectInfo(key, int(r["ContentLength"]), r["LastModified"].timestamp())

    def delete(self, key: str) -> None:
        try:
            self._put.delete_object(Bucket=self.bucket, Key=key)
        except bexc.ClientError as e:
            if str(e.response.get("Error", {}).get("Code", "")) == "NoSuchKey":
                return
            raise self._map_error(e, "delete", key) from None
        except Exception as e:  # noqa: BLE001 - mapped
            raise self._map_error(e, "delete", key) from None

    def list(self, prefix: str = "", start_after: str = "", limit: int = 1000) -> list[ObjectInfo]:
        out: list[ObjectInfo] = []
        while len(out) < limit:
            kw: dict = {"Bucket": self.bucket, "MaxKeys": min(1000, limit - len(out))}
            if prefix:
                kw["Prefix"] = prefix
            if start_after:
                kw["StartAfter"] = start_after
            try:
                r = self._get.list_objects_v2(**kw)
            except Exception as e:  # noqa: BLE001 - mapped
                raise self._map_error(e, "list", prefix) from None
            page = r.get("Contents", [])
            for o in page:
                out.append(ObjectInfo(o["Key"], int(o["Size"]), o["LastModified"].timestamp()))
            if not page or not r.get("IsTruncated"):
                break
            start_after = out[-1].key
        return out

    def close(self) -> None:
        with self._tm_lock:
            if self._tm is not None:
                self._tm.shutdown()
                self._tm = None
        for c in (self._get, self._put):
            try:
                c.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass
