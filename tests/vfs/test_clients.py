"""Several clients of one volume, sessions, read-only mounts, a failing object store, and the
errors of open_volume."""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import threading

import pytest
from vfs_helpers import CTX, KIB, ROOT, create, format_volume, raises_errno, read_file, write_file

from pyjuicefs.chunk import ChunkStore
from pyjuicefs.errors import StorageError, UserError
from pyjuicefs.meta import new_engine
from pyjuicefs.meta.base import Meta
from pyjuicefs.meta.base_common import MetaConfig
from pyjuicefs.object import create_storage
from pyjuicefs.object.base import ObjectStorage
from pyjuicefs.vfs import VFS, VFSConfig, open_volume

BS = 64 * KIB


def test_close_to_open_between_clients(mount):
    a, b = mount(), mount()
    ino = write_file(a, b"shared", b"")
    fb, _ = b.open(CTX, ino, os.O_RDONLY)
    assert b.read(CTX, fb, 0, 100) == b""
    fa, _ = a.open(CTX, ino, os.O_WRONLY)
    a.write(CTX, fa, 0, b"hello from a")
    a.release(CTX, fa)
    fb2, attr = b.open(CTX, ino, os.O_RDONLY)  # a new open sees the committed data
    assert attr.length == 12
    assert b.read(CTX, fb2, 0, 100) == b"hello from a"
    # overwrite in the middle: cached slices of b are dropped at its next open
    fa, _ = a.open(CTX, ino, os.O_RDWR)
    a.write(CTX, fa, 6, b"FROM")
    a.release(CTX, fa)
    b.release(CTX, fb2)
    fb3, _ = b.open(CTX, ino, os.O_RDONLY)
    assert b.read(CTX, fb3, 0, 100) == b"hello FROM a"
    for fh in (fb, fb3):
        b.release(CTX, fh)
    assert b.lookup(CTX, ROOT, b"shared").inode == ino


def test_flock_between_clients(mount):
    a, b = mount(), mount()
    ino = write_file(a, b"lockfile", b"")
    fa, _ = a.open(CTX, ino, os.O_RDWR)
    fb, _ = b.open(CTX, ino, os.O_RDWR)
    a.flock(CTX, fa, 7, fcntl.LOCK_EX)
    with raises_errno(errno.EAGAIN):
        b.flock(CTX, fb, 7, fcntl.LOCK_EX | fcntl.LOCK_NB)  # same owner number, other client
    got = threading.Event()

    def wait_for_lock() -> None:
        b.flock(CTX, fb, 7, fcntl.LOCK_EX)  # blocks until a releases
        got.set()

    t = threading.Thread(target=wait_for_lock)
    t.start()
    assert not got.wait(0.2)
    a.release(CTX, fa)  # drops a's flock
    t.join(10)
    assert got.is_set()
    b.release(CTX, fb)


def test_unlink_by_other_client_while_open(mount, volume):
    a, b = mount(), mount()
    data = os.urandom(2 * BS)
    ino = write_file(a, b"victim", data)
    fa, _ = a.open(CTX, ino, os.O_RDONLY)
    b.unlink(CTX, ROOT, b"victim")  # b does not know a has it open: the data goes now
    with raises_errno(errno.ENOENT):
        b.lookup(CTX, ROOT, b"victim")
    a.release(CTX, fa)
    assert volume.chunk_objects() == []


def test_sessions(mount, volume):
    a = mount()
    sid = a.meta.sid
    assert sid > 0 and sid in [s.sid for s in a.meta.list_sessions()]
    b = mount()
    assert b.meta.sid != sid
    # a file a keeps open after unlinking it is deleted when a's session closes
    fh, ino = create(a, b"kept")
    a.write(CTX, fh, 0, b"k" * BS)
    a.flush(CTX, fh, 0)
    a.unlink(CTX, ROOT, b"kept")
    assert volume.chunk_objects()
    a.close()
    assert sid not in [s.sid for s in b.meta.list_sessions()]
    assert volume.chunk_objects() == []


def test_read_only_mount(mount):
    w = mount()
    ino = write_file(w, b"ro", b"read me")
    r = mount(read_only=True)
    fh, _ = r.open(CTX, ino, os.O_RDONLY)
    assert r.read(CTX, fh, 0, 100) == b"read me"
    r.release(CTX, fh)
    with raises_errno(errno.EROFS):
        r.open(CTX, ino, os.O_RDWR)
    with raises_errno(errno.EROFS):
        r.create(CTX, ROOT, b"new", 0o644, os.O_RDWR)
    with raises_errno(errno.EROFS):
        r.mkdir(CTX, ROOT, b"d", 0o755)
    assert r.meta.sid == 0  # a read-only client registers no session


class FailingStorage(ObjectStorage):
    """Delegates to a store; PUTs fail while `fail` is set."""

    def __init__(self, store: ObjectStorage) -> None:
        self.store = store
        self.fail = False

    def __str__(self) -> str:
        return f"failing({self.store})"

    def put(self, key, data):
        if self.fail:
            raise StorageError(f"injected failure for {key}")
        self.store.put(key, data)

    def get(self, key, off=0, limit=-1):
        return self.store.get(key, off, limit)

    def head(self, key):
        return self.store.head(key)

    def delete(self, key):
        self.store.delete(key)

    def list(self, prefix="", start_after="", limit=1000):
        return self.store.list(prefix, start_after, limit)


def test_failing_store_makes_release_fail_and_commits_nothing(volume, caplog):
    meta = Meta(new_engine(volume.url), MetaConfig(retries=1))
    meta.load()
    meta.new_session()
    storage = FailingStorage(create_storage(volume.fmt, retries=0))
    store = ChunkStore.for_volume(storage, volume.fmt, max_retries=0, retry_delay=lambda _n: 0)
    v = VFS(meta, store, VFSConfig())
    try:
        fh, ino = create(v, b"broken")
        storage.fail = True
        with caplog.at_level(logging.ERROR, logger="pyjuicefs.vfs.writer"):
            v.write(CTX, fh, 0, b"a" * (3 * BS + 10))
            v.write(CTX, fh, 10 * BS, b"b" * 100)  # a second slice of the same file
            with raises_errno(errno.EIO):
                v.fsync(CTX, fh, False)
            with raises_errno(errno.EIO):
                v.write(CTX, fh, 0, b"more")  # the writer stays broken until the file is closed
            with raises_errno(errno.EIO):
                v.release(CTX, fh)
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR and r.name == "pyjuicefs.vfs.writer"]
        assert len(errors) == 1, [r.getMessage() for r in errors]  # logged once
        assert meta.read(ino, 0) == []  # no slice was committed
        assert v.getattr(CTX, ino).length == 0
        assert volume.chunk_objects() == []
        # the store recovers: new writes work again
        storage.fail = False
        ino2 = write_file(v, b"fine", b"ok" * BS)
        assert read_file(v, ino2) == b"ok" * BS
        assert v.writer.buffered == 0
    finally:
        v.close()
        meta.engine.close()


def test_open_volume_errors(new_meta_url, tmp_path):
    url = new_meta_url("memkv")
    with pytest.raises(UserError, match="not formatted"):
        open_volume(url, vfs_conf=VFSConfig())
    format_volume(url, "file", str(tmp_path / "b") + "/")
    with pytest.raises(UserError, match="unknown storage override"):
        open_volume(url, vfs_conf=VFSConfig(), storage_overrides={"region": "x"})
    # a per-client bucket override is used for the data
    other = str(tmp_path / "other") + "/"
    v = open_volume(url, vfs_conf=VFSConfig(), storage_overrides={"bucket": other})
    try:
        write_file(v, b"f", b"x" * 10)
    finally:
        v.close()
    assert any(p.is_file() for p in (tmp_path / "other").rglob("*"))
    assert not (tmp_path / "b").exists() or not any(p.is_file() for p in (tmp_path / "b").rglob("*"))


def test_newer_volume_is_refused(new_meta_url, tmp_path):
    url = new_meta_url("sqlite3")
    format_volume(url, "file", str(tmp_path / "b") + "/")
    engine = new_engine(url)
    meta = Meta(engine)
    fmt = meta.load()
    fmt.MinClientVersion = "9.0.0"
    engine.save_setting(fmt.to_json())
    engine.close()
    with pytest.raises(UserError, match="minimum version"):
        open_volume(url, vfs_conf=VFSConfig())


def test_reader_follows_appends_of_other_client(mount):
    a, b = mount(), mount()
    ino = write_file(a, b"tail", b"line1\n")
    fb, _ = b.open(CTX, ino, os.O_RDONLY)
    assert b.read(CTX, fb, 0, 100) == b"line1\n"
    fa, _ = a.open(CTX, ino, os.O_WRONLY | os.O_APPEND)
    a.write(CTX, fa, 0, b"line2\n")
    a.flush(CTX, fa, 0)
    assert b.getattr(CTX, ino).length == 12  # as `tail -f` polls: a getattr shows the new length
    assert b.read(CTX, fb, 6, 100) == b"line2\n"
    a.release(CTX, fa)
    b.release(CTX, fb)


def test_background_job_cleans_a_dead_client(mount, volume):
    live = mount()
    # a client that dies: its session expires 0.5 s after its last heartbeat
    dead = Meta(new_engine(volume.url), MetaConfig(heartbeat=0.1))
    dead.load()
    dead.on_delete_slice = live.store.remove
    sid = dead.new_session()
    ino = write_file(live, b"orphan", b"o" * BS)
    dead.open(CTX, ino, os.O_RDONLY)
    dead.unlink(CTX, ROOT, b"orphan")  # kept for the dead client: a sustained inode
    assert volume.chunk_objects()
    for _ in range(100):  # the live client's heartbeat (2 s) cleans it up
        if sid not in [s.sid for s in live.meta.list_sessions()]:
            break
        threading.Event().wait(0.1)
    assert sid not in [s.sid for s in live.meta.list_sessions()]
    with raises_errno(errno.ENOENT):
        live.getattr(CTX, ino)
    assert volume.chunk_objects() == []
    dead.engine.close()


def test_readahead_off(mount):
    vfs = mount(max_readahead=-1)
    data = os.urandom(5 * BS)
    ino = write_file(vfs, b"nora", data)
    assert read_file(vfs, ino, chunk=10 * KIB) == data
    assert vfs.reader.pool is None
