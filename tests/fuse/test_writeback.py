"""--writeback through real mounts: blocks staged under <cache-dir>/<UUID>/rawstaging/, the file
committed once staged, staged blocks surviving a killed client and uploaded by the next mount,
--upload-delay holding uploads (a file deleted meanwhile is never uploaded), and the
`pyjuicefs_staging_blocks` line of `.stats`."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
from pathlib import Path

from test_cache_mount import sha, stats, volume_uuid

MiB = 1 << 20


def bucket_of(url: str, tmp_path: Path) -> Path:
    """The temp-dir bucket the `volume` fixture formatted (only one per test here)."""
    (bucket,) = [p for p in tmp_path.iterdir() if p.name.startswith("bucket-")]
    return bucket / "fusetest"


def objects(bucket: Path) -> list[str]:
    chunks = bucket / "chunks"
    if not chunks.exists():
        return []
    return sorted(p.name for p in chunks.rglob("*") if p.is_file())


def staged(cache: Path, uuid: str) -> list[str]:
    d = cache / uuid / "rawstaging"
    return sorted(p.name for p in d.rglob("*") if p.is_file() and not p.name.endswith(".tmp")) if d.exists() else []


def wait_for(cond, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_killed_client_staged_blocks_are_uploaded_by_next_mount(volume, pyjuicefs_mount, tmp_path):
    url = volume("sqlite3")
    bucket = bucket_of(url, tmp_path)
    cache = tmp_path / "cache"
    src = tmp_path / "src"
    data = os.urandom(10 * MiB + 12345)
    src.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()

    # The upload delay keeps every block staged, so the kill surely lands before any upload.
    m = pyjuicefs_mount(url, None, "--cache-dir", str(cache), "--writeback", "--upload-delay", "1h")
    uuid = volume_uuid(m)
    subprocess.run(["cp", str(src), os.path.join(m.path, "copy")], check=True, timeout=60)
    st = stats(m)
    assert st["pyjuicefs_staging_blocks"] == 3, st  # 4 MiB + 4 MiB + the tail
    m.proc.send_signal(signal.SIGKILL)  # right after close: no clean shutdown at all
    m.proc.wait(timeout=10)
    m.umount()  # the dead mount goes (fusermount3 -u, else -z)
    assert not m.mounted
    assert objects(bucket) == []  # nothing was uploaded
    assert len(staged(cache, uuid)) == 3

    m2 = pyjuicefs_mount(url, None, "--cache-dir", str(cache), "--writeback")
    assert sha(Path(m2.path) / "copy") == digest  # intact (from the staged blocks or the bucket)
    wait_for(lambda: len(objects(bucket)) == 3, what="the staged blocks in the bucket")
    wait_for(lambda: stats(m2)["pyjuicefs_staging_blocks"] == 0, what="staging to drain")
    assert staged(cache, uuid) == []
    m2.umount()

    # the objects alone hold the file: read it without any cache
    m3 = pyjuicefs_mount(url, None, "--cache-dir", str(tmp_path / "other-cache"))
    assert sha(Path(m3.path) / "copy") == digest
    assert stats(m3)["juicefs_object_request_durations_histogram_seconds_GET_total"] >= 3


def test_writeback_uploads_in_background(volume, pyjuicefs_mount, tmp_path):
    url = volume("sqlite3")
    bucket = bucket_of(url, tmp_path)
    cache = tmp_path / "cache"
    m = pyjuicefs_mount(url, None, "--cache-dir", str(cache), "--writeback")
    data = os.urandom(5 * MiB)
    (Path(m.path) / "f").write_bytes(data)
    wait_for(lambda: len(objects(bucket)) == 2, what="uploads")
    wait_for(lambda: stats(m)["pyjuicefs_staging_blocks"] == 0, what="staging to drain")
    assert staged(cache, volume_uuid(m)) == []
    assert (Path(m.path) / "f").read_bytes() == data


def test_upload_delay_file_deleted_before_upload_is_never_uploaded(volume, pyjuicefs_mount, tmp_path):
    url = volume("sqlite3")
    bucket = bucket_of(url, tmp_path)
    cache = tmp_path / "cache"
    m = pyjuicefs_mount(url, None, "--cache-dir", str(cache), "--writeback", "--upload-delay", "2s")
    uuid = volume_uuid(m)
    (Path(m.path) / "gone").write_bytes(os.urandom(6 * MiB))
    (Path(m.path) / "kept").write_bytes(b"x" * 1000)
    assert len(staged(cache, uuid)) == 3
    os.unlink(Path(m.path) / "gone")
    wait_for(lambda: staged(cache, uuid) == [], timeout=30, what="the kept block's upload")
    time.sleep(1)
    assert objects(bucket) == [f for f in objects(bucket) if f.endswith("_0_1000")]
    assert len(objects(bucket)) == 1
    assert stats(m)["pyjuicefs_staging_blocks"] == 0
