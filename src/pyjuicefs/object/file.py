"""A local directory as a bucket (`--storage file`, JuiceFS's default).

Keys map to files under the root (`/var/jfs/` + `myjfs/chunks/0/0/1_0_4`). A put writes a hidden
temporary file in the target directory and renames it over the key, so readers see the old or the
new object, never a torn one. list() walks the tree in key order: directory `d` sorts as `d/`,
which puts every key under it exactly where a flat sorted listing would.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
import stat
from collections.abc import Iterator
from typing import BinaryIO

from ..errors import ObjectNotFound, StorageError
from .base import ObjectInfo, ObjectStorage

FILE_MODE = 0o644
DIR_MODE = 0o755
_COPY_BUF = 1 << 20
# Our temporary files: hidden, never listed.
_TMP = re.compile(r"^\..*\.tmp-[0-9a-f]{16}$")


def check_key(key: str) -> None:
    """Refuse keys that are not plain relative names (they would escape or alias in a directory)."""
    if not key or key.startswith("/") or key.endswith("/") or "\0" in key:
        raise StorageError(f"invalid object key {key!r}")
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise StorageError(f"invalid object key {key!r}")


def _os_error(e: OSError, what: str) -> StorageError:
    if e.errno in (errno.ENOENT, errno.ENOTDIR):
        return ObjectNotFound(f"{what}: no such object")
    return StorageError(f"{what}: {e.strerror or e}")


class FileStorage(ObjectStorage):
    def __init__(self, root: str) -> None:
        if root.startswith("file://"):
            root = root[len("file://"):]
        if not root:
            raise StorageError("empty bucket path")
        self.root = os.path.abspath(os.path.expanduser(root)) + "/"

    def __str__(self) -> str:
        return f"file://{self.root}"

    def _path(self, key: str) -> str:
        check_key(key)
        return self.root + key

    def create(self) -> None:
        try:
            os.makedirs(self.root, DIR_MODE, exist_ok=True)
        except OSError as e:
            raise StorageError(f"create {self.root}: {e.strerror or e}") from None

    # --- write -----------------------------------------------------------------------------
    def put(self, key: str, data: bytes | BinaryIO) -> None:
        path = self._path(key)
        d, base = os.path.split(path)
        tmp = os.path.join(d, f".{base[:200]}.tmp-{secrets.token_hex(8)}")
        try:
            fd = self._open_tmp(tmp, d)
            try:
                with os.fdopen(fd, "wb", closefd=True) as f:
                    if isinstance(data, (bytes, bytearray, memoryview)):
                        f.write(data)
                    else:
                        shutil.copyfileobj(data, f, _COPY_BUF)
                os.rename(tmp, path)
            except BaseException:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise
        except OSError as e:
            if e.errno in (errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST):
                raise StorageError(f"{self}{key}: a directory of that name exists") from None
            if e.errno == errno.ENOTDIR:
                raise StorageError(f"{self}{key}: a parent of it is an object") from None
            raise StorageError(f"put {self}{key}: {e.strerror or e}") from None

    def _open_tmp(self, tmp: str, d: str) -> int:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        try:
            return os.open(tmp, flags, FILE_MODE)
        except FileNotFoundError:
            # Parent missing; a concurrent delete never removes directories, so one mkdir suffices.
            os.makedirs(d, DIR_MODE, exist_ok=True)
            return os.open(tmp, flags, FILE_MODE)

    def delete(self, key: str) -> None:
        try:
            os.unlink(self._path(key))
        except FileNotFoundError:
            pass
        except OSError as e:
            if e.errno in (errno.ENOTDIR,):
                return
            if e.errno == errno.EISDIR:
                return  # a directory is not an object
            raise StorageError(f"delete {self}{key}: {e.strerror or e}") from None

    # --- read ------------------------------------------------------------------------------
    def get(self, key: str, off: int = 0, limit: int = -1) -> bytes:
        if off < 0:
            raise ValueError(f"negative offset {off}")
        path = self._path(key)
        try:
            with open(path, "rb", buffering=0) as f:
                st = os.fstat(f.fileno())
                if stat.S_ISDIR(st.st_mode):
                    raise ObjectNotFound(f"{self}{key}: no such object")
                if limit == 0 or off >= st.st_size:
                    return b""
                want = st.st_size - off if limit < 0 else min(limit, st.st_size - off)
                return os.pread(f.fileno(), want, off) if want < (1 << 30) else self._read_loop(f, off, want)
        except IsADirectoryError:
            raise ObjectNotFound(f"{self}{key}: no such object") from None
        except OSError as e:
            raise _os_error(e, f"{self}{key}") from None

    @staticmethod
    def _read_loop(f, off: int, want: int) -> bytes:
        f.seek(off)
        buf = bytearray()
        while len(buf) < want:
            chunk = f.read(min(want - len(buf), 64 << 20))
            if not chunk:
                break
            buf += chunk
        return bytes(buf)

    def head(self, key: str) -> ObjectInfo:
        try:
            st = os.stat(self._path(key))
        except OSError as e:
            raise _os_error(e, f"{self}{key}") from None
        if stat.S_ISDIR(st.st_mode):
            raise ObjectNotFound(f"{self}{key}: no such object")
        return ObjectInfo(key, st.st_size, st.st_mtime)

    def list(self, prefix: str = "", start_after: str = "", limit: int = 1000) -> list[ObjectInfo]:
        out: list[ObjectInfo] = []
        if limit <= 0:
            return out
        for info in self._walk(prefix, start_after):
            out.append(info)
            if len(out) >= limit:
                break
        return out

    def list_all(self, prefix: str = "", start_after: str = "") -> Iterator[ObjectInfo]:
        return self._walk(prefix, start_after)

    def _walk(self, prefix: str, start_after: str) -> Iterator[ObjectInfo]:
        # Start in the deepest directory the prefix names; everything else is outside it.
        top = prefix[: prefix.rfind("/") + 1]
        yield from self._walk_dir(top, prefix, start_after)

    def _walk_dir(self, rel: str, prefix: str, start_after: str) -> Iterator[ObjectInfo]:
        try:
            entries = list(os.scandir(self.root + rel))
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as e:
            raise StorageError(f"list {self.root}{rel}: {e.strerror or e}") from None
        named: list[tuple[str, os.DirEntry]] = []
        for e in entries:
            try:
                is_dir = e.is_dir(follow_symlinks=True)
            except OSError:
                continue
            if is_dir:
                named.append((rel + e.name + "/", e))
            elif not _TMP.match(e.name):
                named.append((rel + e.name, e))
        named.sort(key=lambda t: t[0])
        for key, e in named:
            if key.endswith("/"):
                # Every key below starts with `key`: skip the subtree when none can match.
                if not (key.startswith(prefix) or prefix.startswith(key)):
                    continue
                if key <= start_after and not start_after.startswith(key):
                    continue
                yield from self._walk_dir(key, prefix, start_after)
                continue
            if key <= start_after or not key.startswith(prefix):
                continue
            try:
                st = e.stat(follow_symlinks=True)
            except FileNotFoundError:
                continue  # deleted while listing
            except OSError as err:
                raise StorageError(f"list {self}{key}: {err.strerror or err}") from None
            yield ObjectInfo(key, st.st_size, st.st_mtime)
