"""The chunk store against the reference `juicefs` 1.4 binary, through a real FUSE mount.

- Files the binary writes are read back by ChunkStore from the slice records in its SQLite db.
- ChunkStore, given the same data and slice id, produces the objects the binary wrote (same
  names; same bytes for none/zstd and for lz4 on incompressible data); the binary reads a volume
  whose objects were all replaced by ours.
"""

from __future__ import annotations

import contextlib
import os
import random
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyjuicefs.chunk import CHUNK_SIZE, ChunkStore, visible
from pyjuicefs.meta.codec import decode_slices
from pyjuicefs.object.file import FileStorage

pytestmark = pytest.mark.juicefs

MiB = 1 << 20


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)


class Volume:
    def __init__(self, bin_: str, root: Path, compress: str, hash_prefix: bool) -> None:
        self.bin = bin_
        self.root = root
        self.db = root / "meta.db"
        self.meta = f"sqlite3://{self.db}"
        self.bucket = root / "bucket"
        self.mnt = root / "mnt"
        self.mnt.mkdir()
        self.cache = root / "cache"
        args = [bin_, "format", "--storage", "file", "--bucket", f"{self.bucket}/", "--compress", compress]
        if hash_prefix:
            args.append("--hash-prefix")
        p = run(*args, self.meta, "vol")
        assert p.returncode == 0, p.stderr
        self.hash_prefix = hash_prefix
        self.compress = compress

    @contextlib.contextmanager
    def mounted(self, *extra: str) -> Iterator[Path]:
        p = run(self.bin, "mount", "-d", "--no-usage-report", "--cache-dir", str(self.cache),
                *extra, self.meta, str(self.mnt))
        try:
            assert p.returncode == 0, p.stderr
            deadline = time.monotonic() + 30
            while not os.path.ismount(self.mnt):
                assert time.monotonic() < deadline, "mount did not appear"
                time.sleep(0.1)
            yield self.mnt
        finally:
            if os.path.ismount(self.mnt):
                u = run(self.bin, "umount", "--force", str(self.mnt))
                if u.returncode != 0 or os.path.ismount(self.mnt):
                    run("fusermount3", "-u", "-z", str(self.mnt))

    def storage(self) -> FileStorage:
        return FileStorage(str(self.bucket / "vol"))

    def chunks(self, name: str) -> tuple[int, list[list]]:
        """(length, slice records of each chunk) of a file in the root directory."""
        with contextlib.closing(sqlite3.connect(self.db)) as db:
            db.text_factory = bytes  # appended records (`slices || ?`) come back typed as text
            (ino,) = db.execute("SELECT inode FROM jfs_edge WHERE parent=1 AND name=?", (name.encode(),)).fetchone()
            (length,) = db.execute("SELECT length FROM jfs_node WHERE inode=?", (ino,)).fetchone()
            rows = dict(db.execute("SELECT indx, slices FROM jfs_chunk WHERE inode=?", (ino,)).fetchall())
        n = (length + CHUNK_SIZE - 1) // CHUNK_SIZE
        return length, [decode_slices(rows.get(i, b"")) for i in range(n)]

    def read_file(self, store: ChunkStore, name: str) -> bytes:
        length, chunks = self.chunks(name)
        out = []
        for indx, recs in enumerate(chunks):
            n = min(CHUNK_SIZE, length - indx * CHUNK_SIZE)
            out.append(store.read_segments(visible(recs, 0, n)))
        return b"".join(out)


@pytest.fixture
def volume_factory(juicefs_bin: str, tmp_path: Path):
    count = 0

    def make(compress: str, hash_prefix: bool = False) -> Volume:
        nonlocal count
        count += 1
        root = tmp_path / f"v{count}"
        root.mkdir()
        return Volume(juicefs_bin, root, compress, hash_prefix)

    return make


def text(n: int) -> bytes:
    out = b"".join(b"line %d of some compressible text\n" % i for i in range(n // 20))
    return out[:n]


@pytest.mark.parametrize("compress,hash_prefix", [("lz4", False), ("zstd", True), ("none", False)])
def test_read_files_written_by_the_binary(volume_factory, compress: str, hash_prefix: bool) -> None:
    vol = volume_factory(compress, hash_prefix)
    rand = random.Random(9).randbytes(9 * MiB)
    patched = bytearray(text(6 * MiB))
    with vol.mounted() as mnt:
        (mnt / "rand").write_bytes(rand)
        (mnt / "patched").write_bytes(bytes(patched))
        # later opens write new slices over the first one: the overlay decides what is visible
        for off, data in [(MiB + 5, b"A" * 100_000), (4 * MiB - 10, b"B" * 30), (6 * MiB + 1000, b"C" * 10)]:
            with open(mnt / "patched", "r+b") as f:
                f.seek(off)
                f.write(data)
            if off > len(patched):
                patched.extend(bytes(off - len(patched)))
            patched[off:off + len(data)] = data
        # (no read back here: reading a chunk of >= 5 visible segments makes JuiceFS compact it)
    _, chunks = vol.chunks("patched")
    assert len(chunks[0]) == 4  # four slice records in one chunk
    with ChunkStore(vol.storage(), 4 * MiB, compress, hash_prefix, cache_size=0) as store:
        assert vol.read_file(store, "rand") == rand
        assert vol.read_file(store, "patched") == bytes(patched)
        # and the objects are where we would put them
        _, [[rec]] = vol.chunks("rand")
        names = {o.key for o in vol.storage().list_all("chunks/")}
        assert set(store.keys(rec.id, rec.size)) <= names


@pytest.mark.parametrize("compress", ["lz4", "zstd", "none"])
def test_our_objects_equal_the_binarys_and_it_reads_them(volume_factory, compress: str) -> None:
    vol = volume_factory(compress)
    rand = random.Random(5).randbytes(9 * MiB)
    txt = text(5 * MiB + 123)
    with vol.mounted():
        (vol.mnt / "rand").write_bytes(rand)
        (vol.mnt / "txt").write_bytes(txt)
    theirs = {o.key: vol.storage().get(o.key) for o in vol.storage().list_all("chunks/")}
    # the same data and slice ids through our writer, into a fresh directory
    ours_dir = vol.root / "ours"
    ours = FileStorage(str(ours_dir))
    ours.create()
    with ChunkStore(ours, 4 * MiB, compress, max_uploads=4) as store:
        for name, data in [("rand", rand), ("txt", txt)]:
            _, [[rec]] = vol.chunks(name)
            w = store.new_writer(rec.id)
            for off in range(0, len(data), 128 << 10):  # FUSE-sized writes
                w.write_at(data[off:off + (128 << 10)], off)
                w.flush_to(off)
            w.finish(len(data))
            assert (rec.pos, rec.off, rec.size, rec.len) == (0, 0, len(data), len(data))
    mine = {o.key: ours.get(o.key) for o in ours.list_all("chunks/")}
    assert sorted(mine) == sorted(theirs)  # identical object names
    rand_id = vol.chunks("rand")[1][0][0].id
    for key in mine:
        if compress != "lz4" or key.split("/")[-1].startswith(f"{rand_id}_"):
            assert mine[key] == theirs[key], key  # identical bytes
        # lz4 on compressible data: the Go port ends a block a few bytes differently (decodes the same)
    # put our objects in place of theirs; the binary must read the files back
    for key, body in mine.items():
        vol.storage().put(key, body)
    with vol.mounted("--cache-size", "0"):
        assert (vol.mnt / "rand").read_bytes() == rand
        assert (vol.mnt / "txt").read_bytes() == txt
