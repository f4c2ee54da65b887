"""chunk.disk_cache / cache_file / eviction: JuiceFS's cache layout and checksums, reads at every
verification level, eviction by size and by free space (a real tmpfs) for each policy, corrupt
blocks dropped and fetched again, reuse after reopening, several directories, `memory`, and the
mount flags (cli/cache_options.py)."""

from __future__ import annotations

import os
import struct
import subprocess
import tempfile
import time

import crc32c
import pytest

from pyjuicefs.chunk import ChunkStore
from pyjuicefs.chunk.cache_config import CacheConfig
from pyjuicefs.chunk.cache_file import CS_BLOCK, CorruptBlock, checksum, read_block_file, write_block_file
from pyjuicefs.chunk.disk_cache import ENTRY_OVERHEAD, open_cache_manager
from pyjuicefs.errors import UserError
from pyjuicefs.object.file import FileStorage
from pyjuicefs.vfs.stats import CountingStorage, Stats

KiB = 1 << 10
MiB = 1 << 20
UUID = "00000000-1111-2222-3333-444444444444"


def key(i: int, size: int, sid: int | None = None) -> str:
    sid = 1000 + i if sid is None else sid
    return f"chunks/{sid // 1000_000}/{sid // 1000}/{sid}_0_{size}"


def conf(dirs, **kw) -> CacheConfig:
    return CacheConfig(cache_dirs=[str(d) for d in dirs], **kw)


# --- file format ------------------------------------------------------------------------------------


def test_block_file_layout_is_juicefs(tmp_path):
    data = os.urandom(100_000)
    p = str(tmp_path / "b")
    write_block_file(p, data, 0o600, True)
    raw = open(p, "rb").read()
    # as the 1.4.2 binary writes it: data, then crc32c (Castagnoli) of each 32 KiB, big-endian
    want = b"".join(struct.pack(">I", crc32c.crc32c(data[i:i + CS_BLOCK])) for i in range(0, len(data), CS_BLOCK))
    assert raw == data + want and len(want) == 16
    assert os.stat(p).st_mode & 0o777 == 0o600
    assert not os.path.exists(p + ".tmp")


@pytest.mark.parametrize("level", ["none", "full", "shrink", "extend"])
def test_read_levels(tmp_path, level):
    data = os.urandom(200_000)
    p = str(tmp_path / "b")
    write_block_file(p, data, 0o600, True)
    for off, n in [(0, 200_000), (1, 10), (CS_BLOCK - 5, 10), (70_000, 130_000), (199_999, 1)]:
        assert read_block_file(p, len(data), level, off, n) == data[off:off + n]
    # flip one byte in the third 32 KiB piece
    with open(p, "r+b") as f:
        f.seek(2 * CS_BLOCK + 100)
        b = f.read(1)
        f.seek(2 * CS_BLOCK + 100)
        f.write(bytes([b[0] ^ 1]))
    whole = (0, 200_000)
    inside = (2 * CS_BLOCK, CS_BLOCK)  # exactly the bad piece
    touching = (2 * CS_BLOCK + 50, 100)  # part of the bad piece
    away = (0, 1000)
    detected = {
        "none": set(),
        "full": {whole},
        "shrink": {whole, inside},
        "extend": {whole, inside, touching},
    }[level]
    for rng in (whole, inside, touching, away):
        if rng in detected:
            with pytest.raises(CorruptBlock):
                read_block_file(p, len(data), level, *rng)
        else:
            read_block_file(p, len(data), level, *rng)


def test_file_without_checksum_and_bad_size(tmp_path):
    data = os.urandom(5000)
    p = str(tmp_path / "b")
    write_block_file(p, data, 0o600, False)
    assert read_block_file(p, 5000, "extend") == data  # no trailer: nothing to verify
    with open(p, "ab") as f:
        f.write(b"xy")
    with pytest.raises(CorruptBlock, match="invalid file size"):
        read_block_file(p, 5000, "extend")


# --- put / get / reuse --------------------------------------------------------------------------------


def test_put_get_and_layout(tmp_path):
    m = open_cache_manager(conf([tmp_path / "c"]), UUID)
    try:
        blocks = {key(i, 1000 + i): os.urandom(1000 + i) for i in range(10)}
        for k, d in blocks.items():
            m.cache(k, d)
        for k, d in blocks.items():  # served from the queue or the file
            assert m.load(k) == d
        m.flush()
        root = tmp_path / "c" / UUID
        for k, d in blocks.items():
            assert (root / "raw" / k).read_bytes() == d + checksum(d)
            assert m.load(k, 10, 20) == d[10:30]
        assert (root / ".lock").read_text()
        assert m.load(key(99, 10)) is None
        assert m.counts() == (10, sum(len(d) + ENTRY_OVERHEAD for d in blocks.values()))
        m.remove(key(0, 1000))
        assert m.load(key(0, 1000)) is None and not (root / "raw" / key(0, 1000)).exists()
    finally:
        m.close()


def test_reuse_after_reopen(tmp_path):
    blocks = {key(i, 2000): os.urandom(2000) for i in range(20)}
    m = open_cache_manager(conf([tmp_path / "c"]), UUID)
    for k, d in blocks.items():
        m.cache(k, d)
    ident = m.stores[0].id
    m.close()
    m = open_cache_manager(conf([tmp_path / "c"]), UUID)
    try:
        assert m.stores[0].id == ident
        assert m.stores[0].wait_scanned()
        assert m.counts() == (20, 20 * (2000 + ENTRY_OVERHEAD))
        for k, d in blocks.items():
            assert m.load(k) == d
    finally:
        m.close()


def test_several_dirs(tmp_path):
    dirs = [tmp_path / f"d{i}" for i in range(3)]
    blocks = {key(i, 500): os.urandom(500) for i in range(60)}
    m = open_cache_manager(conf(dirs), UUID)
    for k, d in blocks.items():
        m.cache(k, d)
    m.close()
    where = {k: [d for d in dirs if (d / UUID / "raw" / k).exists()] for k in blocks}
    assert all(len(v) == 1 for v in where.values())  # each block in exactly one directory
    assert all(sum(1 for v in where.values() if v == [d]) > 5 for d in dirs)  # spread over all
    # the same directories, given in another order, find every block
    m = open_cache_manager(conf(list(reversed(dirs))), UUID)
    try:
        for k, d in blocks.items():
            assert m.load(k) == d
    finally:
        m.close()


# --- eviction -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["2-random", "lru"])
def test_eviction_by_size(tmp_path, policy):
    size = 64 * KiB
    cap = 10 * (size + ENTRY_OVERHEAD)
    m = open_cache_manager(conf([tmp_path / "c"], cache_size=cap, cache_eviction=policy), UUID)
    s = m.stores[0]
    try:
        s.wait_scanned()
        hot = key(0, size)
        m.cache(hot, os.urandom(size))
        m.flush()
        for i in range(1, 40):
            time.sleep(0.002)
            m.cache(key(i, size), os.urandom(size))
            m.flush()
            assert m.load(hot) is not None or policy == "2-random"  # a read keeps it recent
            assert s.used <= cap
        files = [p for p in (tmp_path / "c" / UUID / "raw").rglob("*") if p.is_file()]
        assert len(files) == len(s.index) <= 10
        assert s.stats.evictions >= 30
        if policy == "lru":
            assert hot in s.index  # always the most recently used
            assert key(39, size) in s.index
    finally:
        m.close()


def test_no_eviction_policy_keeps_blocks(tmp_path):
    size = 64 * KiB
    cap = 5 * (size + ENTRY_OVERHEAD)
    m = open_cache_manager(conf([tmp_path / "c"], cache_size=cap, cache_eviction="none"), UUID)
    try:
        for i in range(8):
            m.cache(key(i, size), os.urandom(size))
        m.flush()
        assert len(m.stores[0].index) == 8  # `none` never deletes (JuiceFS: it only stops caching when full)
    finally:
        m.close()


@pytest.fixture
def tmpfs():
    """A real 16 MiB tmpfs, unmounted at the end (needs root, as CI has)."""
    d = tempfile.mkdtemp(prefix="pyjfs-tmpfs-")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", d], capture_output=True, text=True)
    assert r.returncode == 0, f"cannot mount a tmpfs (root needed): {r.stderr}"
    try:
        yield d
    finally:
        subprocess.run(["umount", d], capture_output=True)
        os.rmdir(d)


def _free_ratio(path: str) -> float:
    st = os.statvfs(path)
    return st.f_bavail / st.f_blocks


@pytest.mark.parametrize("policy", ["2-random", "lru", "none"])
def test_eviction_by_free_space(tmpfs, policy):
    m = open_cache_manager(conf([tmpfs], cache_eviction=policy, free_space_ratio=0.3), UUID)
    s = m.stores[0]
    try:
        assert s.capacity <= int(0.7 * 16 * MiB)  # lowered to what the free ratio leaves
        with open(os.path.join(tmpfs, "filler"), "wb") as f:
            f.write(b"\0" * (6 * MiB))
        for i in range(14):
            m.cache(key(i, 512 * KiB), os.urandom(512 * KiB))
            m.flush()
            time.sleep(0.1)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and s.raw_full != (_free_ratio(tmpfs) < 0.3):
            time.sleep(0.1)
        time.sleep(2.5)  # the space checker runs every second
        if policy == "none":
            assert s.stats.evictions == 0 and s.raw_full  # nothing is deleted, the dir is full
            n = len(s.index)
            m.cache(key(99, 512 * KiB), os.urandom(512 * KiB))
            m.flush()
            assert s.stats.drops == 1 and len(s.index) == n  # so new blocks are not cached
        else:
            assert s.stats.evictions > 0
            assert _free_ratio(tmpfs) >= 0.3 - 0.01
    finally:
        m.close()


# --- through the chunk store --------------------------------------------------------------------------


def _store(tmp_path, cache_dir, stats: Stats, **kw) -> ChunkStore:
    storage = FileStorage(str(tmp_path / "bucket") + "/")
    disk = open_cache_manager(conf([cache_dir], **kw), UUID, block_size=1 * MiB)
    return ChunkStore(CountingStorage(storage, stats), 1 * MiB, "none", cache_size=0,
                      conf=conf([cache_dir], **kw), disk=disk)


def test_corrupt_block_is_dropped_and_fetched_again(tmp_path):
    data = os.urandom(3 * MiB)
    st1 = Stats()
    s = _store(tmp_path, tmp_path / "c", st1)
    w = s.new_writer(7)
    w.write_at(data, 0)
    w.finish(len(data))
    assert s.read_at(7, len(data), 0, len(data)) == data  # fetched, then cached
    s.close()
    path = tmp_path / "c" / UUID / "raw" / s.block_key(7, 1, len(data))
    with open(path, "r+b") as f:
        f.seek(500_000)
        f.write(b"\xde\xad\xbe\xef")

    st2 = Stats()
    s = _store(tmp_path, tmp_path / "c", st2)
    try:
        s.disk.stores[0].wait_scanned()
        assert s.read_at(7, len(data), 0, len(data)) == data
        assert st2.objects["GET"] == 1  # only the corrupt block
        assert s.disk.stats.corrupt == 1
        s.disk.flush()
        assert s.read_at(7, len(data), 1 * MiB, 1 * MiB) == data[MiB:2 * MiB]
        assert st2.objects["GET"] == 1  # cached again, intact
        m = s.metrics()
        assert m["blockcache_hits"] >= 3 and m["blockcache_miss"] == 1
    finally:
        s.close()


def test_partial_only_caches_small_reads_only(tmp_path):
    data = os.urandom(2 * MiB)
    stats = Stats()
    s = _store(tmp_path, tmp_path / "c", stats, cache_partial_only=True)
    try:
        w = s.new_writer(9)
        w.write_at(data, 0)
        w.finish(len(data))
        assert s.read_at(9, len(data), 0, MiB) == data[:MiB]  # a full-block read: not cached
        s.disk.flush()
        assert not s.disk.has(s.block_key(9, 0, len(data)))
        assert s.read_at(9, len(data), MiB + 100, 1000) == data[MiB + 100:MiB + 1100]  # small: prefetched
        deadline = time.monotonic() + 10
        while not s.disk.has(s.block_key(9, 1, len(data))) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert s.disk.has(s.block_key(9, 1, len(data)))
    finally:
        s.close()


def test_memory_cache_dir(tmp_path):
    from pyjuicefs.format import Format
    from pyjuicefs.vfs.config import VFSConfig
    from pyjuicefs.vfs.setup import _chunk_store

    fmt = Format(Name="v", UUID=UUID, Storage="file", Bucket=str(tmp_path) + "/", BlockSize=1024,
                 Compression="none")
    stats = Stats()
    vc = VFSConfig(cache=CacheConfig(cache_dirs=["memory"], cache_size=8 * MiB))
    s = _chunk_store(CountingStorage(FileStorage(str(tmp_path / "b") + "/"), stats), fmt, vc)
    try:
        assert s.disk is None and s.cache.capacity == 8 * MiB
        data = os.urandom(3 * MiB)
        w = s.new_writer(3)
        w.write_at(data, 0)
        w.finish(len(data))
        assert s.read_at(3, len(data), 0, len(data)) == data
        gets = stats.objects["GET"]
        assert s.read_at(3, len(data), 0, len(data)) == data
        assert stats.objects["GET"] == gets
    finally:
        s.close()
    assert not list(tmp_path.glob("**/raw"))


# --- access errors ---------------------------------------------------------------------------------------


def test_unusable_dir_is_one_clear_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserError) as e:
        open_cache_manager(conf([blocker / "sub"]), UUID)
    assert "cache dir" in str(e.value) and "read and write access" in str(e.value)
    assert "\n" not in str(e.value)


def test_read_only_dir_is_one_clear_line(tmp_path):
    """A directory the client may not write: a read-only file system as root (root ignores
    permission bits), a 0500 directory otherwise."""
    d = tempfile.mkdtemp(prefix="pyjfs-ro-")
    mounted = False
    try:
        if os.getuid() == 0:
            r = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", d], capture_output=True, text=True)
            assert r.returncode == 0, r.stderr
            mounted = True
            reason = "Read-only file system"
        else:
            os.chmod(d, 0o500)
            reason = "Permission denied"
        with pytest.raises(UserError) as e:
            open_cache_manager(conf([os.path.join(d, "cache")]), UUID)
        msg = str(e.value)
        assert reason in msg and "read and write access" in msg and "\n" not in msg, msg
    finally:
        if mounted:
            subprocess.run(["umount", d], capture_output=True)
        os.chmod(d, 0o700)
        os.rmdir(d)


# --- flags --------------------------------------------------------------------------------------------


def _mount_args(*extra: str):
    from pyjuicefs.cli.main import build_parser

    return build_parser().parse_args(["mount", "sqlite3:///x.db", "/mnt/x", *extra])


def test_flag_defaults_are_juicefs():
    from pyjuicefs.cli.cache_options import cache_config

    c = cache_config(_mount_args())
    assert c.cache_dirs == (["/var/jfsCache"] if os.getuid() == 0 else [os.path.expanduser("~/.juicefs/cache")])
    assert c.cache_size == 102400 * MiB and c.free_space_ratio == 0.1 and c.cache_mode == 0o600
    assert c.cache_eviction == "2-random" and c.verify_checksum == "extend"
    assert (c.writeback, c.upload_delay, c.max_downloads, c.upload_limit, c.download_limit) == (False, 0, 200, 0, 0)
    c = cache_config(_mount_args("--cache-dir", "/a:/b", "--cache-size", "512", "--upload-limit", "80",
                                 "--writeback", "--upload-delay", "1m", "--cache-mode", "0640",
                                 "--upload-hours", "1-6", "--cache-eviction", "lru"))
    assert c.cache_dirs == ["/a", "/b"] and c.cache_size == 512 * MiB and c.upload_limit == 10_000_000
    assert c.writeback and c.upload_delay == 60 and c.cache_mode == 0o640 and c.upload_hours == (1, 6)
    assert cache_config(_mount_args("--cache-dir", "memory")).memory


@pytest.mark.parametrize("args", [("--cache-eviction", "fifo"), ("--verify-cache-checksum", "md5"),
                                  ("--free-space-ratio", "1.5"), ("--cache-mode", "999"),
                                  ("--cache-size", "lots"), ("--upload-hours", "25-3"), ("--max-downloads", "0")])
def test_bad_flags(args):
    from pyjuicefs.cli.cache_options import cache_config

    with pytest.raises(UserError):
        cache_config(_mount_args(*args))
