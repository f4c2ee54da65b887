"""chunk.store: slices written as JuiceFS block objects and read back, on MemStorage and FileStorage."""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO

import pytest

from pyjuicefs.chunk import CHUNK_SIZE, ChunkStore, visible, zeros
from pyjuicefs.compress import new_compressor
from pyjuicefs.errors import ObjectNotFound, StorageError, TransientStorageError
from pyjuicefs.meta.types import Slice
from pyjuicefs.object.base import ObjectInfo, ObjectStorage
from pyjuicefs.object.file import FileStorage
from pyjuicefs.object.mem import MemStorage

MiB = 1 << 20
BS = 4 * MiB


class Recording(ObjectStorage):
    """A real store with a tap: counts calls, can slow or fail some of them, and tracks how many
    PUTs run at once. Failures are injected the way a real store reports them (StorageError)."""

    def __init__(self, inner: ObjectStorage) -> None:
        self.inner = inner
        self.lock = threading.Lock()
        self.gets: list[tuple[str, int, int]] = []
        self.puts: list[str] = []
        self.put_delay = 0.0
        self.get_delay = 0.0
        self.fail_put: Callable[[str, int], bool] = lambda key, attempt: False
        self.running_puts = 0
        self.max_running_puts = 0

    def __str__(self) -> str:
        return f"recording:{self.inner}"

    def put(self, key: str, data: bytes | BinaryIO) -> None:
        with self.lock:
            attempt = self.puts.count(key)
            self.puts.append(key)
            self.running_puts += 1
            self.max_running_puts = max(self.max_running_puts, self.running_puts)
        try:
            if self.put_delay:
                time.sleep(self.put_delay)
            if self.fail_put(key, attempt):
                raise TransientStorageError(f"put {key}: injected failure")
            self.inner.put(key, data)
        finally:
            with self.lock:
                self.running_puts -= 1

    def get(self, key: str, off: int = 0, limit: int = -1) -> bytes:
        with self.lock:
            self.gets.append((key, off, limit))
        if self.get_delay:
            time.sleep(self.get_delay)
        return self.inner.get(key, off, limit)

    def head(self, key: str) -> ObjectInfo:
        return self.inner.head(key)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def list(self, prefix: str = "", start_after: str = "", limit: int = 1000) -> list[ObjectInfo]:
        return self.inner.list(prefix, start_after, limit)


@pytest.fixture(params=["mem", "file"])
def storage(request: pytest.FixtureRequest, tmp_path) -> Iterator[Recording]:
    inner: ObjectStorage = MemStorage() if request.param == "mem" else FileStorage(str(tmp_path / "bucket" / "vol"))
    inner.create()
    yield Recording(inner)


def make(storage: ObjectStorage, **kw) -> ChunkStore:
    kw.setdefault("retry_delay", lambda attempt: 0.0)
    return ChunkStore(storage, **kw)


def write_slice(store: ChunkStore, sid: int, data: bytes, piece: int = 300_001, flush_every: int = 3) -> None:
    """Write data in uneven pieces, flushing now and then as the file writer does."""
    w = store.new_writer(sid)
    for n, off in enumerate(range(0, len(data), piece)):
        w.write_at(data[off:off + piece], off)
        if n % flush_every == flush_every - 1:
            w.flush_to(off)
    w.finish(len(data))


def objects(storage: ObjectStorage) -> dict[str, int]:
    return {o.key: o.size for o in storage.list_all("chunks/")}


# --- names -----------------------------------------------------------------------------------


def test_block_names_golden() -> None:
    s = ChunkStore(MemStorage())
    hp = ChunkStore(MemStorage(), hash_prefix=True)
    small = ChunkStore(MemStorage(), block_size=1 * MiB)
    try:
        # names the reference client wrote (see test_chunk_interop.py / test_compress.py)
        assert s.block_key(4097, 0, 6900) == "chunks/0/4/4097_0_6900"
        assert hp.block_key(4097, 0, 6900) == "chunks/01/0/4097_0_6900"
        assert s.keys(1, 9 * MiB) == ["chunks/0/0/1_0_4194304", "chunks/0/0/1_1_4194304", "chunks/0/0/1_2_1048576"]
        assert hp.keys(2, 7288890) == ["chunks/02/0/2_0_4194304", "chunks/02/0/2_1_3094586"]
        assert s.block_key(1234567890, 2, 64 * MiB) == "chunks/1234/1234567/1234567890_2_4194304"
        assert hp.block_key(1234567890, 2, 64 * MiB) == "chunks/D2/1234/1234567890_2_4194304"
        assert small.keys(7, 1 * MiB + 1) == ["chunks/0/0/7_0_1048576", "chunks/0/0/7_1_1"]
        assert s.keys(9, 0) == []
    finally:
        s.close(), hp.close(), small.close()


def test_for_volume_uses_the_format() -> None:
    from pyjuicefs.format import Format

    with ChunkStore.for_volume(MemStorage(), Format(BlockSize=1024, Compression="zstd", HashPrefix=True)) as s:
        assert (s.block_size, s.compressor.name, s.hash_prefix) == (MiB, "zstd", True)


def test_block_size_must_divide_chunk() -> None:
    with pytest.raises(ValueError):
        ChunkStore(MemStorage(), block_size=3 * MiB)


# --- write + read ----------------------------------------------------------------------------


@pytest.mark.parametrize("algo", ["none", "lz4", "zstd"])
def test_round_trip(storage: Recording, algo: str) -> None:
    data = random.Random(1).randbytes(9 * MiB + 12345)
    with make(storage, compressor=algo, cache_size=0) as store:
        write_slice(store, 4097, data)
        objs = objects(storage)
        assert sorted(objs) == sorted(store.keys(4097, len(data)))
        assert list(store.keys(4097, len(data)))[-1].endswith("_2_1060921")
        # each object holds exactly the compressed block (JuiceFS framing)
        comp = new_compressor(algo)
        for i, key in enumerate(store.keys(4097, len(data))):
            raw = storage.inner.get(key)
            assert raw == comp.compress(data[i * BS:(i + 1) * BS])
        for off, n in [(0, len(data)), (0, 1), (BS - 1, 2), (BS, BS), (2 * BS + 5, 12340),
                       (len(data) - 1, 1), (100, 3 * MiB), (BS - 10, BS + 20), (5, 0)]:
            assert store.read_at(4097, len(data), off, n) == data[off:off + n], (off, n)


@pytest.mark.parametrize("block_size", [64 << 10, 1 * MiB])
def test_other_block_sizes(block_size: int) -> None:
    st = MemStorage()
    data = os.urandom(3 * block_size + 77)
    with make(st, block_size=block_size, compressor="lz4") as store:
        write_slice(store, 42, data, piece=10_000)
        assert sorted(objects(st)) == sorted(store.keys(42, len(data)))
        assert len(objects(st)) == 4
        assert store.read_at(42, len(data), 0, len(data)) == data


def test_full_chunk_edge() -> None:
    st = MemStorage()
    data = os.urandom(CHUNK_SIZE)
    with make(st) as store:
        w = store.new_writer(5)
        with pytest.raises(ValueError, match="chunk boundary"):
            w.write_at(b"xy", CHUNK_SIZE - 1)
        w.write_at(data, 0)
        w.finish(CHUNK_SIZE)
        keys = store.keys(5, CHUNK_SIZE)
        assert len(keys) == 16 and keys[-1] == "chunks/0/0/5_15_4194304"
        assert set(objects(st)) == set(keys)
        assert store.read_at(5, CHUNK_SIZE, CHUNK_SIZE - 3, 3) == data[-3:]
        assert store.read_at(5, CHUNK_SIZE, 0, CHUNK_SIZE) == data


def test_gap_is_zero_filled_and_overwrite_rules() -> None:
    st = MemStorage()
    with make(st) as store:
        w = store.new_writer(8)
        w.write_at(b"head", 0)
        w.write_at(b"tail", 5 * MiB)  # gap [4, 5 MiB) reads as zeros
        w.write_at(b"HE", 1)  # overwriting the buffered part is fine
        w.flush_to(4 * MiB)
        assert w.uploaded == BS
        with pytest.raises(ValueError, match="uploaded"):
            w.write_at(b"late", 100)
        w.write_at(b"more", 5 * MiB + 4)
        assert w.pending_bytes == MiB + 8
        with pytest.raises(ValueError, match="length mismatch"):
            w.finish(123)
        w.finish(5 * MiB + 8)
        got = store.read_at(8, 5 * MiB + 8, 0, 5 * MiB + 8)
        assert got == b"hHEd" + bytes(5 * MiB - 4) + b"tailmore"
        assert sorted(objects(st)) == ["chunks/0/0/8_0_4194304", "chunks/0/0/8_1_1048584"]


def test_flush_beyond_length_does_not_skip_blocks() -> None:
    st = MemStorage()
    with make(st) as store:
        w = store.new_writer(9)
        w.write_at(b"a" * 10, 0)
        w.flush_to(3 * BS)  # nothing full yet: nothing uploaded
        assert w.uploaded == 0 and objects(st) == {}
        w.write_at(b"b", BS + 1)
        w.finish(BS + 2)
        assert store.read_at(9, BS + 2, 0, BS + 2) == b"a" * 10 + bytes(BS - 9) + b"b"


def test_overlaid_slices(storage: Recording) -> None:
    """Three slices of one chunk written in order; the visible bytes equal a byte-array model."""
    rnd = random.Random(3)
    model = bytearray(12 * MiB)
    records = []
    with make(storage, compressor="zstd") as store:
        for sid, (pos, n) in enumerate([(0, 10 * MiB), (3 * MiB + 7, 2 * MiB), (9 * MiB, 3 * MiB)], start=100):
            data = rnd.randbytes(n)
            write_slice(store, sid, data)
            records.append(Slice(pos, sid, n, 0, n))
            model[pos:pos + n] = data
        records.append(Slice(1 * MiB, 0, 0, 0, 1000))  # a hole punched by truncate/fallocate
        model[MiB:MiB + 1000] = bytes(1000)
        for off, n in [(0, 12 * MiB), (3 * MiB, 10), (4 * MiB - 5, 3 * MiB), (MiB - 1, 1002), (11 * MiB, 2 * MiB)]:
            want = (bytes(model) + bytes(2 * MiB))[off:off + n]
            assert store.read_segments(visible(records, off, n)) == want, (off, n)


# --- uploads -----------------------------------------------------------------------------------


def test_uploads_run_concurrently_bounded() -> None:
    rec = Recording(MemStorage())
    rec.put_delay = 0.15
    with make(rec, block_size=64 << 10, max_uploads=4) as store:
        data = os.urandom(12 * (64 << 10))
        w = store.new_writer(11)
        w.write_at(data, 0)
        t0 = time.monotonic()
        w.flush_to(len(data))  # returns at once: uploads run in the pool
        assert time.monotonic() - t0 < 0.1
        w.finish(len(data))  # returns when all 12 are stored
        assert len(objects(rec)) == 12
        assert rec.max_running_puts == 4
        assert store.read_at(11, len(data), 0, len(data)) == data


def test_transient_failure_is_retried() -> None:
    rec = Recording(MemStorage())
    rec.fail_put = lambda key, attempt: "_1_" in key and attempt < 2
    with make(rec, max_retries=3) as store:
        data = os.urandom(2 * BS)
        write_slice(store, 12, data)
        assert rec.puts.count("chunks/0/0/12_1_4194304") == 3
        assert store.read_at(12, len(data), 0, len(data)) == data


def test_failed_upload_surfaces_and_leaves_no_object() -> None:
    rec = Recording(MemStorage())
    rec.fail_put = lambda key, attempt: "_1_" in key
    with make(rec, max_retries=2) as store:
        data = os.urandom(3 * BS)
        w = store.new_writer(13)
        w.write_at(data, 0)
        with pytest.raises(StorageError, match=r"13_1_4194304.*after 3 tries"):
            w.finish(len(data))
        assert rec.puts.count("chunks/0/0/13_1_4194304") == 3
        assert "chunks/0/0/13_1_4194304" not in objects(rec)
        with pytest.raises(StorageError):  # the writer stays failed
            w.finish(len(data))
        w.abort()  # deletes what was stored
        assert objects(rec) == {}


def test_upload_error_on_file_storage_leaves_no_partial_file(tmp_path) -> None:
    """A PUT that fails mid-way (disk quota / I/O error) must not leave a torn object behind."""

    class Torn(FileStorage):
        def put(self, key: str, data: bytes | BinaryIO) -> None:
            if "_0_" in key:
                class Reader:
                    def __init__(self) -> None:
                        self.sent = False

                    def read(self, n: int = -1) -> bytes:
                        if self.sent:
                            raise OSError(5, "Input/output error")
                        self.sent = True
                        return b"x" * 1000

                    def readinto(self, b) -> int:
                        chunk = self.read(len(b))
                        b[:len(chunk)] = chunk
                        return len(chunk)

                data = Reader()  # type: ignore[assignment]
            super().put(key, data)

    st = Torn(str(tmp_path / "vol"))
    st.create()
    with make(st, max_retries=1) as store:
        w = store.new_writer(14)
        w.write_at(b"z" * 5000, 0)
        with pytest.raises(StorageError):
            w.finish(5000)
    left = [os.path.join(d, f) for d, _, fs in os.walk(tmp_path) for f in fs]
    assert left == []


# --- reads -----------------------------------------------------------------------------------


def test_small_unaligned_read_of_uncompressed_block_is_a_range_get() -> None:
    rec = Recording(MemStorage())
    data = os.urandom(2 * BS)
    with make(rec, cache_size=64 * MiB) as store:
        write_slice(store, 20, data)
        rec.gets.clear()
        assert store.read_at(20, len(data), BS + 1000, 5000) == data[BS + 1000:BS + 6000]
        assert rec.gets == [("chunks/0/0/20_1_4194304", 1000, 5000)]
        assert len(store.cache) == 0  # a range is not a block: not cached
        # from the start of a block (or a big read): the whole block, cached
        assert store.read_at(20, len(data), 0, 10) == data[:10]
        assert rec.gets[-1] == ("chunks/0/0/20_0_4194304", 0, -1)
        assert store.read_at(20, len(data), 7, 100) == data[7:107]
        assert len(rec.gets) == 2  # served by the cache


def test_compressed_block_is_fetched_whole() -> None:
    rec = Recording(MemStorage())
    data = os.urandom(2 * BS)
    with make(rec, compressor="lz4", cache_size=0) as store:
        write_slice(store, 21, data)
        rec.gets.clear()
        assert store.read_at(21, len(data), BS + 1000, 5000) == data[BS + 1000:BS + 6000]
        assert rec.gets == [("chunks/0/0/21_1_4194304", 0, -1)]


def test_concurrent_reads_of_one_block_fetch_it_once() -> None:
    rec = Recording(MemStorage())
    data = os.urandom(BS)
    with make(rec, compressor="zstd", cache_size=0) as store:
        write_slice(store, 22, data)
        rec.gets.clear()
        rec.get_delay = 0.3
        barrier = threading.Barrier(8)

        def read(i: int) -> bytes:
            barrier.wait()
            return store.read_at(22, BS, i * 1000, 1000)

        with ThreadPoolExecutor(8) as ex:
            got = list(ex.map(read, range(8)))
        assert got == [data[i * 1000:(i + 1) * 1000] for i in range(8)]
        assert len(rec.gets) == 1


def test_multi_block_read_fetches_blocks_in_parallel() -> None:
    rec = Recording(MemStorage())
    data = os.urandom(6 * BS)
    with make(rec, cache_size=0) as store:
        write_slice(store, 23, data)
        rec.get_delay = 0.2
        t0 = time.monotonic()
        assert store.read_at(23, len(data), 0, len(data)) == data
        assert time.monotonic() - t0 < 0.2 * 6 * 0.75
        assert len(rec.gets) == 6


def test_lru_cache_by_bytes() -> None:
    rec = Recording(MemStorage())
    data = os.urandom(3 * BS)
    with make(rec, cache_size=2 * BS) as store:
        write_slice(store, 24, data)
        for i in range(3):
            store.read_at(24, len(data), i * BS, 1)
        assert len(store.cache) == 2 and store.cache.used == 2 * BS
        assert store.block_key(24, 0, len(data)) not in store.cache  # least recently used went
        n = len(rec.gets)
        store.read_at(24, len(data), 2 * BS + 5, 1)
        assert len(rec.gets) == n


def test_written_small_block_is_cached() -> None:
    rec = Recording(MemStorage())
    with make(rec) as store:
        write_slice(store, 25, b"small file")
        assert store.read_at(25, 10, 0, 10) == b"small file"
        assert rec.gets == []


def test_remove(storage: Recording) -> None:
    data = os.urandom(2 * BS + 3)
    with make(storage, compressor="lz4") as store:
        write_slice(store, 30, data)
        write_slice(store, 31, b"keep me")
        store.read_at(30, len(data), 0, 10)
        store.remove(30, len(data))
        assert sorted(objects(storage)) == ["chunks/0/0/31_0_7"]
        assert len(store.cache) == 1  # 30's blocks were evicted
        store.remove(30, len(data))  # again: nothing to delete, still fine
        with pytest.raises(ObjectNotFound):
            store.read_at(30, len(data), 0, 10)


def test_bad_reads() -> None:
    st = MemStorage()
    with make(st, compressor="zstd", cache_size=0) as store:
        write_slice(store, 40, b"x" * 100)
        with pytest.raises(ValueError):
            store.read_at(40, 100, 90, 11)
        with pytest.raises(ValueError):
            store.read_at(0, 100, 0, 1)
        st.put("chunks/0/0/40_0_100", b"not zstd at all")
        with pytest.raises(StorageError, match="zstd"):
            store.read_at(40, 100, 0, 10)
    assert zeros(5) == b"\0" * 5
