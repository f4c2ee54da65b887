"""The functional checks of `objbench` (JuiceFS 1.4 cmd/objbench.go functionalTesting): what a
store must do for JuiceFS, each check `pass`, `not support`, or the reason it failed (yellow when
JuiceFS only warns about it).

Beyond the ObjectStorage contract, two capabilities are probed:
  * file-system operations (chmod/chown/mtime) on a `file` bucket, done on the object's file;
  * multipart upload on S3-compatible buckets, through the store's boto3 client.
Other stores report `not support` for them, as JuiceFS does for stores without them.
"""

from __future__ import annotations

import grp
import os
import pwd
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..object.base import ObjectStorage
from ..object.prefix import WithPrefix

KEY = "put_test_file"
SYNC_TESTS = {"special key", "put a big object", "put an empty object", "multipart upload"}
BIG_OBJECT_SIZE = 256 << 20  # JuiceFS's "put a big object"
SPECIAL_KEY = "测试编码文件" + '{"name":"juicefs"}' + "\u001f" + "%uFF081%uFF09.jpg"

PASS, NOT_SUPPORT, SKIPPED, FAILED = "pass", "not support", "skipped", "failed"


class NotSupported(Exception):
    """The store lacks the capability (JuiceFS's ENOTSUP)."""


class Warn(Exception):
    """A deviation JuiceFS only warns about (shown yellow)."""


def _unwrap(store: ObjectStorage) -> tuple[ObjectStorage, str]:
    """The innermost store and the prefix the wrappers add to keys."""
    prefix = ""
    while True:
        if isinstance(store, WithPrefix):
            prefix = store.prefix + prefix
            store = store.store
        elif hasattr(store, "store") and type(store).__name__ in ("RetryingStorage", "CountingStorage"):
            store = store.store  # type: ignore[attr-defined]
        else:
            return store, prefix


# --- optional capabilities ---------------------------------------------------------------------


class FileOps:
    """chmod/chown/chtimes of objects in a `file` bucket (JuiceFS's object.FileSystem)."""

    def __init__(self, root: str, prefix: str) -> None:
        self.base = root + prefix

    def path(self, key: str) -> str:
        return self.base + key

    def chmod(self, key: str, mode: int) -> None:
        os.chmod(self.path(key), mode)

    def chown(self, key: str, user: str, group: str) -> None:
        os.chown(self.path(key), pwd.getpwnam(user).pw_uid, grp.getgrnam(group).gr_gid)

    def chtimes(self, key: str, mtime: float) -> None:
        os.utime(self.path(key), (mtime, mtime))

    def stat(self, key: str) -> os.stat_result:
        return os.stat(self.path(key))


def file_ops(store: ObjectStorage) -> FileOps | None:
    from ..object.file import FileStorage

    inner, prefix = _unwrap(store)
    if isinstance(inner, FileStorage):
        return FileOps(inner.root, prefix)
    return None


@dataclass
class Multipart:
    """S3 multipart upload through the store's own client (the contract has no multipart API)."""

    client: Any
    bucket: str
    prefix: str
    min_part_size: int = 5 << 20

    def create(self, key: str) -> str:
        return self.client.create_multipart_upload(Bucket=self.bucket, Key=self.prefix + key)["UploadId"]

    def upload_part(self, key: str, upload_id: str, num: int, data: bytes) -> dict[str, Any]:
        r = self.client.upload_part(Bucket=self.bucket, Key=self.prefix + key, UploadId=upload_id,
                                    PartNumber=num, Body=data)
        return {"PartNumber": num, "ETag": r["ETag"]}

    def complete(self, key: str, upload_id: str, parts: list[dict[str, Any]]) -> None:
        self.client.complete_multipart_upload(Bucket=self.bucket, Key=self.prefix + key, UploadId=upload_id,
                                              MultipartUpload={"Parts": parts})

    def abort(self, key: str, upload_id: str) -> None:
        self.client.abort_multipart_upload(Bucket=self.bucket, Key=self.prefix + key, UploadId=upload_id)


def multipart(store: ObjectStorage) -> Multipart | None:
    inner, prefix = _unwrap(store)
    if type(inner).__name__ == "S3Storage" and getattr(inner, "_put", None) is not None:
        return Multipart(inner._put, inner.bucket, prefix)  # type: ignore[attr-defined]
    return None


def nobody_group() -> str:
    return grp.getgrgid(pwd.getpwnam("nobody").pw_gid).gr_name


# --- the checks ----------------------------------------------------------------------------------


def mock_data(seed: bytes, idx: int, size: int) -> bytes:
    """JuiceFS's getMockData: `size` bytes of seed, starting at idx % len(seed), wrapping around."""
    if not seed or size <= 0:
        return b""
    i = idx % len(seed)
    out = seed[i:] + seed[:i]
    while len(out) < size:
        out += out
    return out[:size]


@dataclass
class Check:
    category: str
    test: str
    result: str  # pass / not support / the (shortened) reason
    status: str  # PASS, NOT_SUPPORT, FAILED, or "warning"


def run_checks(blob: ObjectStorage, on_done: Callable[[Check], None] | None = None) -> list[Check]:
    fs = file_ops(blob)
    mp = multipart(blob)
    checks: list[Check] = []

    def case(title: str, fn: Callable[[], None]) -> None:
        status, result = PASS, PASS
        try:
            fn()
        except NotSupported:
            status, result = NOT_SUPPORT, NOT_SUPPORT
        except Exception as e:  # noqa: BLE001 - every failure is a result to show
            status = "warning" if isinstance(e, Warn) else FAILED
            result = str(e) or type(e).__name__
            if len(result) > 45:
                result = result[:45] + "..."
        category = "sync" if title in SYNC_TESTS or title.startswith("change") else "basic"
        c = Check(category, title, result, status)
        checks.append(c)
        if on_done:
            on_done(c)

    def put_hello() -> None:
        try:
            blob.put(KEY, b"hello")
        except Exception as e:  # noqa: BLE001
            raise RuntimeError(f"put object failed: {e}") from None

    def quietly_delete(key: str) -> None:
        try:
            blob.delete(key)
        except Exception:  # noqa: BLE001 - cleanup
            pass

    def create_bucket() -> None:
        created = True
        try:
            blob.put(KEY, b"1")
        except Exception:  # noqa: BLE001 - the bucket may be missing
            created = False
        try:
            if not created:
                try:
                    blob.create()
                except Exception as e:  # noqa: BLE001
                    raise RuntimeError(f"can't create bucket: {e}") from None
            try:
                blob.create()
            except Exception:  # noqa: BLE001
                raise RuntimeError("creating a bucket that already exists returns an error") from None
        finally:
            quietly_delete(KEY)

    def put_object() -> None:
        put_hello()
        quietly_delete(KEY)

    def get_object() -> None:
        put_hello()
        try:
            for limit in (-1, 5):
                d = blob.get(KEY, 0, limit)
                if d != b"hello":
                    raise RuntimeError(f'failed to get an object: expect "hello", but got {d!r}')
        finally:
            quietly_delete(KEY)

    def get_missing() -> None:
        try:
            blob.get("not_exists_file")
        except Exception:  # noqa: BLE001 - the expected outcome
            return
        raise RuntimeError("get not existed object should failed")

    def get_partial() -> None:
        put_hello()
        try:
            for off, limit, want, what in ((0, 1, b"h", "the first byte"), (4, 1, b"o", "the last byte"),
                                           (2, 3, b"llo", "the last three bytes"), (2, 2, b"ll", "two bytes")):
                d = blob.get(KEY, off, limit)
                if d != want:
                    raise RuntimeError(f"failed to get {what}: expect {want.decode()!r}, but got {d!r}")
            for off, want, what in ((4, b"o", "the end"), (6, b"", "the offset")):
                try:
                    d = blob.get(KEY, off, 2)
                except Exception as e:  # noqa: BLE001
                    raise Warn(f"failed to get object with {what} out of range: {e}") from None
                if d != want:
                    raise Warn(f"failed to get object with {what} out of range, expect {want!r}, but got {d!r}")
        finally:
            quietly_delete(KEY)

    def head_object() -> None:
        put_hello()
        try:
            try:
                info = blob.head(KEY)
            except Exception as e:  # noqa: BLE001
                raise RuntimeError(f"failed to head object {e}") from None
            if info.key != KEY:
                raise RuntimeError(f"expected key {KEY!r} but got {info.key}")
        finally:
            quietly_delete(KEY)

    def delete_object() -> None:
        put_hello()
        try:
            blob.delete(KEY)
        except Exception as e:  # noqa: BLE001
            raise RuntimeError(f"delete failed: {e}") from None
        try:
            blob.head(KEY)
        except Exception:  # noqa: BLE001 - expected: it is gone
            pass
        else:
            raise RuntimeError("expect err is not nil")
        try:
            blob.delete(KEY)
        except Exception as e:  # noqa: BLE001
            raise RuntimeError(f"delete not existed: {e}") from None

    def delete_missing() -> None:
        try:
            blob.delete(KEY)
        except Exception as e:  # noqa: BLE001
            raise RuntimeError(f"deleting a non-existent object returns an error {e}") from None

    def list_objects() -> None:
        put_hello()
        keys = [f"hashKey{i}" for i in range(100)]
        try:
            objs = blob.list("", "", 1)
            if len(objs) != 1:
                raise RuntimeError(f"list should return 1 keys, but got {len(objs)}")
            if objs[0].key != KEY:
                raise RuntimeError(f"first key should be {KEY}, but got {objs[0].key}")
            if objs[0].size != 5:
                raise RuntimeError(f"size of first key shold be 5, but got {objs[0].size}")
            if abs(objs[0].mtime - time.time()) > 30:
                raise RuntimeError(f"mtime of key should be within 30 seconds, but got {objs[0].mtime - time.time():.0f}s")
            if blob.list("", "test2", 1):
                raise RuntimeError("list should not return anything after test2")
            for k in keys:
                blob.put(k, b"hello")
            got = [o.key for o in blob.list("hashKey", "", len(keys))]
            if got != sorted(keys):
                raise RuntimeError("the result for list is incorrect")
        finally:
            quietly_delete(KEY)
            for k in keys:
                quietly_delete(k)

    def special_key() -> None:
        try:
            try:
                blob.put(SPECIAL_KEY, b"1")
            except Exception as e:  # noqa: BLE001
                raise RuntimeError(f"put encode file failed: {e}") from None
            try:
                objs = blob.list("", "测试编码文件", 1)
            except Exception as e:  # noqa: BLE001
                raise RuntimeError(f"list encode file failed {e}") from None
            if len(objs) == 1 and objs[0].key != SPECIAL_KEY:
                raise RuntimeError(f"list encode file failed: expect key {SPECIAL_KEY!r}, but got {objs[0].key!r}")
        finally:
            quietly_delete(SPECIAL_KEY)

    def big_object() -> None:
        block = os.urandom(4 << 20)
        content = block * (BIG_OBJECT_SIZE // len(block)) + bytes(BIG_OBJECT_SIZE % len(block))
        try:
            blob.put(KEY, content)
        finally:
            quietly_delete(KEY)

    def empty_object() -> None:
        try:
            blob.put("empty_test_file", b"")
            try:
                blob.put("slash_test_file/", b"1")
            except Exception as e:  # noqa: BLE001
                raise RuntimeError(f"put `/` suffixed object failed: {e}") from None
        finally:
            quietly_delete("empty_test_file")
            quietly_delete("slash_test_file/")

    def multipart_upload() -> None:
        if mp is None:
            raise NotSupported()
        key = "multi_test_file"
        try:
            try:
                upload = mp.create(key)
            except Exception as e:  # noqa: BLE001
                raise Warn(f"create multipart upload failed: {e}") from None
            seed = os.urandom(mp.min_part_size)
            content = [mock_data(seed, i, mp.min_part_size) for i in range(3)]
            try:
                parts = [mp.upload_part(key, upload, i + 1, content[i]) for i in range(3)]
                content[0] = seed + seed  # overwrite the first part, then the last
                parts[0] = mp.upload_part(key, upload, 1, content[0])
                content[2] = b"hello"
                parts[2] = mp.upload_part(key, upload, 3, content[2])
            except Exception as e:  # noqa: BLE001
                mp.abort(key, upload)
                raise Warn(f"multipart upload error: {e}") from None
            try:
                mp.complete(key, upload, parts)
            except Exception as e:  # noqa: BLE001
                raise Warn(f"failed to complete multipart upload: {e}") from None
            try:
                got = blob.get(key)
            except Exception as e:  # noqa: BLE001
                raise Warn(f"failed to get multipart upload file: {e}") from None
            if got != b"".join(content):
                raise Warn("the content of the multipart upload file is incorrect")
        finally:
            quietly_delete(key)

    def fs_case(title: str, fn: Callable[[FileOps], None]) -> None:
        def body() -> None:
            if fs is None:
                raise NotSupported()
            put_hello()
            try:
                fn(fs)
            except Exception as e:  # noqa: BLE001 - JuiceFS only warns about these
                raise Warn(str(e)) from None
            finally:
                quietly_delete(KEY)

        case(title, body)

    def chown(f: FileOps) -> None:
        if os.getuid() != 0:
            raise RuntimeError("root required")
        group = nobody_group()
        try:
            f.chown(KEY, "nobody", group)
        except Exception as e:  # noqa: BLE001
            raise RuntimeError(f"failed to chown object {e}") from None
        st = f.stat(KEY)
        if st.st_uid != pwd.getpwnam("nobody").pw_uid:
            raise RuntimeError(f"expect owner nobody but got {st.st_uid}")
        if grp.getgrgid(st.st_gid).gr_name != group:
            raise RuntimeError(f"expect group {group} but got {st.st_gid}")

    def chmod(f: FileOps) -> None:
        f.chmod(KEY, 0o777)
        mode = f.stat(KEY).st_mode & 0o7777
        if mode != 0o777:
            raise RuntimeError(f"expect mode 777 but got {mode:o}")

    def chtimes(f: FileOps) -> None:
        mtime = time.time() - 600
        try:
            f.chtimes(KEY, mtime)
        except Exception as e:  # noqa: BLE001
            raise RuntimeError(f"failed to chtimes {e}") from None
        got = blob.head(KEY).mtime
        if abs(got - mtime) > 2:
            raise RuntimeError(f"mtime deviation is too large: expected {mtime:.0f}, got {got:.0f}")

    case("create a bucket", create_bucket)
    case("put an object", put_object)
    case("get an object", get_object)
    case("get non-exist", get_missing)
    case("get partial object", get_partial)
    case("head an object", head_object)
    case("delete an object", delete_object)
    case("delete non-exist", delete_missing)
    case("list objects", list_objects)
    case("special key", special_key)
    case("put a big object", big_object)
    case("put an empty object", empty_object)
    case("multipart upload", multipart_upload)
    fs_case("change owner/group", chown)
    fs_case("change permission", chmod)
    fs_case("change mtime", chtimes)
    return checks
