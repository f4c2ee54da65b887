"""The local disk cache through real mounts: blocks cached under <cache-dir>/<UUID>/raw/ as
JuiceFS lays them out, found again after a remount (no object GETs), a corrupted cached block
detected and fetched again (never returned), and a cache dir the client cannot use refused at mount
with one line."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import services

MiB = 1 << 20


def stats(m) -> dict[str, float]:
    """`.stats` of a mount as {name: value}."""
    out: dict[str, float] = {}
    for line in (Path(m.path) / ".stats").read_text().splitlines():
        name, _, value = line.rpartition(" ")
        if name:
            out[name] = float(value)
    return out


def gets(m) -> int:
    return int(stats(m).get("juicefs_object_request_durations_histogram_seconds_GET_total", 0))


def volume_uuid(m) -> str:
    return json.loads((Path(m.path) / ".config").read_text())["Format"]["UUID"]


def sha(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def write_random(path: Path, size: int) -> str:
    data = os.urandom(size)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def cached_blocks(cache: Path, uuid: str) -> list[Path]:
    return sorted(p for p in (cache / uuid / "raw").rglob("*") if p.is_file() and not p.name.endswith(".tmp"))


def test_remount_reads_from_disk_cache(volume, pyjuicefs_mount, tmp_path):
    url = volume("sqlite3")
    cache = tmp_path / "cache"
    m = pyjuicefs_mount(url, None, "--cache-dir", str(cache))
    digest = write_random(Path(m.path) / "big", 20 * MiB)
    assert sha(Path(m.path) / "big") == digest  # this read fetches the full blocks and caches them
    uuid = volume_uuid(m)
    m.umount()  # queued cache writes are written before the client exits
    blocks = cached_blocks(cache, uuid)
    assert len(blocks) == 5, blocks  # 20 MiB = 5 blocks of 4 MiB
    for b in blocks:
        assert b.relative_to(cache / uuid / "raw").parts[0] == "chunks"
        assert b.stat().st_size == 4 * MiB + 4 * 128  # the block + one crc32c per 32 KiB
        assert b.stat().st_mode & 0o777 == 0o600
    assert (cache / uuid / ".lock").exists()

    m2 = pyjuicefs_mount(url, None, "--cache-dir", str(cache))
    assert sha(Path(m2.path) / "big") == digest
    st = stats(m2)
    assert gets(m2) == 0, st
    assert st["juicefs_blockcache_hits"] > 0 and st["juicefs_blockcache_miss"] == 0, st


def test_cache_large_write_caches_written_blocks(volume, pyjuicefs_mount, tmp_path):
    url = volume("sqlite3")
    cache = tmp_path / "cache"
    m = pyjuicefs_mount(url, None, "--cache-dir", str(cache), "--cache-large-write")
    digest = write_random(Path(m.path) / "f", 9 * MiB)  # two full blocks and a small one
    m.umount()
    m2 = pyjuicefs_mount(url, None, "--cache-dir", str(cache))
    assert sha(Path(m2.path) / "f") == digest
    assert gets(m2) == 0


def test_small_written_blocks_are_cached(volume, pyjuicefs_mount, tmp_path):
    url = volume("sqlite3")
    cache = tmp_path / "cache"
    m = pyjuicefs_mount(url, None, "--cache-dir", str(cache))
    digest = write_random(Path(m.path) / "small", 100_000)
    uuid = volume_uuid(m)
    m.umount()
    names = [p.name for p in cached_blocks(cache, uuid)]
    assert len(names) == 1 and names[0].endswith("_0_100000"), names  # a block < 4 MiB is cached on write
    m2 = pyjuicefs_mount(url, None, "--cache-dir", str(cache))
    assert sha(Path(m2.path) / "small") == digest
    assert gets(m2) == 0


def test_corrupt_cached_block_is_fetched_again(volume, pyjuicefs_mount, tmp_path):
    url = volume("sqlite3")
    cache = tmp_path / "cache"
    m = pyjuicefs_mount(url, None, "--cache-dir", str(cache))
    digest = write_random(Path(m.path) / "f", 12 * MiB)
    assert sha(Path(m.path) / "f") == digest
    uuid = volume_uuid(m)
    m.umount()
    blocks = cached_blocks(cache, uuid)
    assert len(blocks) == 3
    victim = blocks[1]
    with open(victim, "r+b") as f:  # flip bytes in the middle of the block's data
        f.seek(1 * MiB + 12345)
        b = f.read(16)
        f.seek(1 * MiB + 12345)
        f.write(bytes(x ^ 0xFF for x in b))

    m2 = pyjuicefs_mount(url, None, "--cache-dir", str(cache))
    assert sha(Path(m2.path) / "f") == digest  # the corrupt bytes are never returned
    st = stats(m2)
    assert gets(m2) == 1, st  # only the corrupt block came from the object storage
    assert st["juicefs_blockcache_corrupt"] == 1, st
    m2.umount()
    # the block was cached again, intact
    m3 = pyjuicefs_mount(url, None, "--cache-dir", str(cache))
    assert sha(Path(m3.path) / "f") == digest
    assert gets(m3) == 0


def test_memory_cache(volume, pyjuicefs_mount, tmp_path):
    url = volume("sqlite3")
    m = pyjuicefs_mount(url, None, "--cache-dir", "memory", "--cache-size", "64")
    digest = write_random(Path(m.path) / "f", 6 * MiB)
    assert sha(Path(m.path) / "f") == digest
    before, hits = gets(m), stats(m)["juicefs_blockcache_hits"]
    assert sha(Path(m.path) / "f") == digest  # a new open: the kernel asks the client again
    assert gets(m) == before  # served from memory
    assert stats(m)["juicefs_blockcache_hits"] > hits
    assert not any(tmp_path.glob("**/raw"))


def test_unusable_cache_dir_is_one_line(volume, tmp_path):
    url = volume("sqlite3")
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    mp = tmp_path / "mnt"
    mp.mkdir()
    p = subprocess.run([sys.executable, "-m", "pyjuicefs", "mount", url, str(mp), "--cache-dir", str(blocker / "c")],
                       capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    services.assert_one_error(p, "cache dir", "read and write access")
    assert not os.path.ismount(mp)


def test_reads_a_cache_written_by_juicefs(volume, pyjuicefs_mount, juicefs_mount, tmp_path):
    """Same layout and checksums as JuiceFS 1.4.2: a cache the binary filled serves our reads."""
    url = volume("sqlite3")
    cache = tmp_path / "cache"
    j = juicefs_mount(url, None, "--cache-dir", str(cache))
    digest = write_random(Path(j.path) / "f", 9 * MiB)
    assert sha(Path(j.path) / "f") == digest
    time.sleep(1)  # JuiceFS writes its cache asynchronously
    j.umount()
    m = pyjuicefs_mount(url, None, "--cache-dir", str(cache))
    uuid = volume_uuid(m)
    assert len(cached_blocks(cache, uuid)) == 3
    assert sha(Path(m.path) / "f") == digest
    assert gets(m) == 0
