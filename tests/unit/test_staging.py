"""chunk.staging through the chunk store: write-back blocks staged under rawstaging/ (finish()
returns once staged), uploaded in the background, read back before their upload, kept across a
killed process and uploaded by the next store, held by the upload delay, never uploaded when
their slice is removed first; plus the bandwidth token bucket."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from pyjuicefs.chunk import ChunkStore
from pyjuicefs.chunk.cache_config import CacheConfig
from pyjuicefs.chunk.disk_cache import open_cache_manager
from pyjuicefs.chunk.limits import TokenBucket
from pyjuicefs.object.file import FileStorage
from pyjuicefs.vfs.stats import CountingStorage, Stats

MiB = 1 << 20
UUID = "aaaaaaaa-1111-2222-3333-444444444444"
BS = 1 * MiB


def make_store(tmp: Path, stats: Stats | None = None, **kw) -> ChunkStore:
    conf = CacheConfig(cache_dirs=[str(tmp / "cache")], writeback=True, **kw)
    disk = open_cache_manager(conf, UUID, block_size=BS)
    storage = FileStorage(str(tmp / "bucket") + "/")
    return ChunkStore(CountingStorage(storage, stats or Stats()), BS, "none", cache_size=0, conf=conf, disk=disk)


def objects(tmp: Path) -> list[str]:
    d = tmp / "bucket" / "chunks"
    return sorted(p.name for p in d.rglob("*") if p.is_file()) if d.exists() else []


def staged(tmp: Path) -> list[str]:
    d = tmp / "cache" / UUID / "rawstaging"
    return sorted(p.name for p in d.rglob("*") if p.is_file()) if d.exists() else []


def write_slice(store: ChunkStore, sid: int, data: bytes) -> None:
    w = store.new_writer(sid)
    w.write_at(data, 0)
    w.finish(len(data))


def wait_for(cond, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def test_stage_then_upload_in_background(tmp_path):
    stats = Stats()
    s = make_store(tmp_path, stats)
    try:
        data = os.urandom(2 * BS + 1000)
        write_slice(s, 11, data)  # returns once the three blocks are staged
        assert s.read_at(11, len(data), 0, len(data)) == data
        assert wait_for(lambda: s.staging_blocks() == 0)
        assert objects(tmp_path) == ["11_0_1048576", "11_1_1048576", "11_2_1000"]
        assert staged(tmp_path) == []
        # still cached (raw/), now as an ordinary evictable block
        raw = tmp_path / "cache" / UUID / "raw"
        assert sorted(p.name for p in raw.rglob("*") if p.is_file()) == objects(tmp_path)
        gets = stats.objects["GET"]
        assert s.read_at(11, len(data), 0, len(data)) == data and stats.objects["GET"] == gets
    finally:
        s.close()


CRASHER = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    sys.path[:0] = {path!r}
    from test_staging import make_store, write_slice
    s = make_store(Path(sys.argv[1]), upload_delay=3600)
    write_slice(s, 21, bytes(range(256)) * 8192 + b"tail")
    print("staged", s.staging_blocks(), flush=True)
    os.kill(os.getpid(), 9)  # crash: no close, nothing uploaded
""")


def test_crash_then_recover_and_upload(tmp_path):
    here = str(Path(__file__).parent)
    code = CRASHER.format(path=[here] + sys.path)
    p = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert p.returncode == -9, p.stderr
    assert p.stdout.strip() == "staged 3", p.stdout + p.stderr
    data = bytes(range(256)) * 8192 + b"tail"
    assert objects(tmp_path) == []  # the crash dropped them before any upload
    assert len(staged(tmp_path)) == 3

    # a store still delaying uploads serves the staged data (no object exists yet)
    stats = Stats()
    s = make_store(tmp_path, stats, upload_delay=3600)
    try:
        assert s.read_at(21, len(data), 0, len(data)) == data
        assert stats.objects["GET"] == 0
        assert wait_for(lambda: s.staging_blocks() == 3)
        assert objects(tmp_path) == []
    finally:
        s.close()
    assert len(staged(tmp_path)) == 3

    # the next store without a delay finds them and uploads them
    s = make_store(tmp_path)
    try:
        assert wait_for(lambda: len(objects(tmp_path)) == 3 and s.staging_blocks() == 0)
        assert staged(tmp_path) == []
    finally:
        s.close()
    fresh = ChunkStore(FileStorage(str(tmp_path / "bucket") + "/"), BS, "none", cache_size=0)
    try:
        assert fresh.read_at(21, len(data), 0, len(data)) == data  # from the objects alone
    finally:
        fresh.close()


def test_upload_delay_and_delete_before_upload(tmp_path):
    stats = Stats()
    s = make_store(tmp_path, stats, upload_delay=1.5)
    try:
        gone = os.urandom(BS + 10)
        kept = os.urandom(5000)
        write_slice(s, 31, gone)
        write_slice(s, 32, kept)
        assert len(staged(tmp_path)) == 3 and s.staging_blocks() == 3
        time.sleep(0.5)
        assert objects(tmp_path) == []  # held by the delay
        s.remove(31, len(gone))  # the file was deleted within the delay
        assert s.staging_blocks() == 1 and staged(tmp_path) == ["32_0_5000"]
        assert wait_for(lambda: s.staging_blocks() == 0, timeout=20)
        time.sleep(0.5)
        assert objects(tmp_path) == ["32_0_5000"]
        assert stats.objects["PUT"] == 1  # the deleted slice's blocks were never uploaded
        assert staged(tmp_path) == []
    finally:
        s.close()


def test_staging_survives_close(tmp_path):
    s = make_store(tmp_path, upload_delay=3600)
    write_slice(s, 41, b"z" * 3000)
    s.close()  # a clean close leaves delayed blocks staged for the next mount
    assert staged(tmp_path) == ["41_0_3000"] and objects(tmp_path) == []


def test_token_bucket_rate():
    b = TokenBucket(1_000_000, 100_000)  # 1 MB/s, 100 kB burst
    start = time.monotonic()
    for _ in range(5):
        b.wait(100_000)
    took = time.monotonic() - start
    assert 0.3 < took < 0.8  # 500 kB - 100 kB of burst at 1 MB/s ≈ 0.4 s
    assert TokenBucket.for_limit(0) is None
    big = TokenBucket(10_000_000, 1000)
    t = time.monotonic()
    big.wait(2_000_000)  # more than the bucket holds: debt, never a deadlock
    big.wait(1_000_000)
    assert 0.15 < time.monotonic() - t < 0.6


def test_upload_limit_slows_puts(tmp_path):
    conf = CacheConfig(cache_dirs=[str(tmp_path / "cache")], upload_limit=2_000_000)  # 1.7 MB/s fill rate
    disk = open_cache_manager(conf, UUID, block_size=BS)
    s = ChunkStore(FileStorage(str(tmp_path / "bucket") + "/"), BS, "none", cache_size=0, conf=conf, disk=disk)
    try:
        start = time.monotonic()
        write_slice(s, 51, os.urandom(4 * BS + 1))
        took = time.monotonic() - start
        assert took > 1.0, took  # 4.2 MB - 2 MB burst at 1.7 MB/s ≈ 1.3 s
    finally:
        s.close()
