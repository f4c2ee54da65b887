"""Write and read paths of the VFS: round trips, block and chunk edges, random overwrites checked
against a bytearray model, sparse files, truncate with pending writes, O_APPEND."""

from __future__ import annotations

import errno
import hashlib
import os
import random
import threading

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from vfs_helpers import CTX, KIB, MIB, ROOT, create, format_volume, raises_errno, read_file, write_file

from pyjuicefs.meta.types import CHUNK_SIZE, SET_ATTR_SIZE, Attr
from pyjuicefs.vfs import VFSConfig, open_volume

BS = 64 * KIB  # the test volumes' block size


def test_small_round_trip(vfs):
    ino = write_file(vfs, b"small", b"hello, world")
    assert vfs.getattr(CTX, ino).length == 12
    assert read_file(vfs, ino) == b"hello, world"


def test_empty_file(vfs):
    ino = write_file(vfs, b"empty", b"")
    assert vfs.getattr(CTX, ino).length == 0
    assert read_file(vfs, ino) == b""


def test_block_edges(vfs):
    rnd = random.Random(1)
    for n in (BS - 1, BS, BS + 1, 3 * BS, 3 * BS + 7):
        data = rnd.randbytes(n)
        ino = write_file(vfs, b"edge%d" % n, data)
        assert read_file(vfs, ino, chunk=BS // 2 + 3) == data, n


def test_read_sees_own_pending_writes(vfs):
    fh, ino = create(vfs, b"pending")
    vfs.write(CTX, fh, 0, b"a" * 1000)
    # uncommitted: length and data are visible to this client already
    assert vfs.getattr(CTX, ino).length == 1000
    assert vfs.read(CTX, fh, 10, 5) == b"aaaaa"
    vfs.write(CTX, fh, 500, b"b" * 10)
    assert vfs.read(CTX, fh, 495, 20) == b"a" * 5 + b"b" * 10 + b"a" * 5
    vfs.release(CTX, fh)
    assert read_file(vfs, ino) == b"a" * 500 + b"b" * 10 + b"a" * 490


def test_sequential_writes_in_small_pieces(vfs):
    rnd = random.Random(2)
    data = rnd.randbytes(5 * BS + 123)
    fh, ino = create(vfs, b"seq")
    for off in range(0, len(data), 4096):
        assert vfs.write(CTX, fh, off, data[off:off + 4096]) == len(data[off:off + 4096])
    vfs.release(CTX, fh)
    assert read_file(vfs, ino, chunk=4096) == data
    # one slice: sequential writes continue the same slice
    slices = [s for s in vfs.meta.read(ino, 0) if s.id]
    assert len(slices) == 1 and slices[0].len == len(data)


def test_sparse_file(vfs):
    fh, ino = create(vfs, b"sparse")
    vfs.write(CTX, fh, 10 * BS + 5, b"tail")
    vfs.write(CTX, fh, 3, b"head")
    vfs.release(CTX, fh)
    got = read_file(vfs, ino)
    want = bytearray(10 * BS + 9)
    want[3:7] = b"head"
    want[10 * BS + 5:] = b"tail"
    assert got == bytes(want)


def test_sparse_beyond_first_chunk(vfs):
    fh, ino = create(vfs, b"far")
    off = 2 * CHUNK_SIZE + 100
    vfs.write(CTX, fh, off, b"xyz")
    vfs.release(CTX, fh)
    assert vfs.getattr(CTX, ino).length == off + 3
    fh, _ = vfs.open(CTX, ino, os.O_RDONLY)
    assert vfs.read(CTX, fh, off - 5, 100) == b"\0" * 5 + b"xyz"
    assert vfs.read(CTX, fh, CHUNK_SIZE - 2, 4) == b"\0" * 4
    vfs.release(CTX, fh)


def test_write_spanning_chunks(vfs):
    rnd = random.Random(3)
    data = rnd.randbytes(3 * BS)
    fh, ino = create(vfs, b"span")
    off = CHUNK_SIZE - BS - 17
    vfs.write(CTX, fh, off, data)
    vfs.release(CTX, fh)
    assert [s.id != 0 for s in vfs.meta.read(ino, 1)] == [True]  # split at the chunk boundary
    fh, _ = vfs.open(CTX, ino, os.O_RDONLY)
    assert vfs.read(CTX, fh, off, len(data)) == data
    vfs.release(CTX, fh)


def test_seventy_mib_across_chunks(new_meta_url):
    """The big one runs once, on an in-memory volume (64 KiB blocks: 1120 block objects)."""
    url = new_meta_url("memkv")
    format_volume(url, "mem", f"vfs-big-{os.getpid()}-{random.random()}")
    with open_volume(url, vfs_conf=VFSConfig()) as vfs:
        _seventy_mib(vfs)


def _seventy_mib(vfs) -> None:
    total = 70 * MIB
    piece = os.urandom(MIB)
    fh, ino = create(vfs, b"big")
    h = hashlib.sha256()
    for i in range(total // MIB):
        data = piece[i:] + piece[:i]  # each MiB differs
        vfs.write(CTX, fh, i * MIB, data)
        h.update(data)
    vfs.release(CTX, fh)
    assert vfs.getattr(CTX, ino).length == total
    assert sum(s.len for s in vfs.meta.read(ino, 1) if s.id) == total - CHUNK_SIZE
    fh, _ = vfs.open(CTX, ino, os.O_RDONLY)
    g = hashlib.sha256()
    off = 0
    while off < total:
        b = vfs.read(CTX, fh, off, 128 * KIB)
        assert b
        g.update(b)
        off += len(b)
    vfs.release(CTX, fh)
    assert g.hexdigest() == h.hexdigest()
    assert vfs.reader.used == 0  # every prefetched piece was consumed or dropped


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(st.tuples(st.integers(0, 6 * BS), st.integers(1, BS + 100), st.booleans()),
                    min_size=1, max_size=12))
def test_random_overwrites_match_model(vfs, ops):
    name = os.urandom(8).hex().encode()
    fh, ino = create(vfs, name)
    model = bytearray()
    for i, (off, n, flush) in enumerate(ops):
        data = bytes([i % 251 + 1]) * n
        vfs.write(CTX, fh, off, data)
        if len(model) < off + n:
            model.extend(bytes(off + n - len(model)))
        model[off:off + n] = data
        if flush:
            vfs.flush(CTX, fh, 0)
        # reads in the middle see everything written so far
        a = max(0, off - 100)
        assert vfs.read(CTX, fh, a, n + 200) == bytes(model[a:a + n + 200])
    assert vfs.getattr(CTX, ino).length == len(model)
    vfs.release(CTX, fh)
    assert read_file(vfs, ino, chunk=BS - 1) == bytes(model)
    vfs.unlink(CTX, ROOT, name)


def test_truncate_with_pending_writes(vfs):
    fh, ino = create(vfs, b"trunc")
    vfs.write(CTX, fh, 0, b"x" * (2 * BS))
    # shrink while the writes are still buffered: they are committed first, then cut
    attr = vfs.setattr(CTX, ino, SET_ATTR_SIZE, Attr(length=100), fh=fh)
    assert attr.length == 100
    assert vfs.read(CTX, fh, 0, 1000) == b"x" * 100
    vfs.write(CTX, fh, 200, b"y")  # gap reads as zeros
    attr = vfs.setattr(CTX, ino, SET_ATTR_SIZE, Attr(length=3 * BS))  # grow
    assert attr.length == 3 * BS
    vfs.release(CTX, fh)
    want = b"x" * 100 + b"\0" * 100 + b"y" + b"\0" * (3 * BS - 201)
    assert read_file(vfs, ino) == want


def test_truncate_down_then_reread_old_range(vfs):
    ino = write_file(vfs, b"t2", b"z" * (3 * BS))
    fh, _ = vfs.open(CTX, ino, os.O_RDWR)
    assert vfs.read(CTX, fh, 0, 3 * BS) == b"z" * (3 * BS)  # warms caches and readahead
    vfs.setattr(CTX, ino, SET_ATTR_SIZE, Attr(length=10), fh=fh)
    vfs.setattr(CTX, ino, SET_ATTR_SIZE, Attr(length=2 * BS), fh=fh)
    assert vfs.read(CTX, fh, 0, 3 * BS) == b"z" * 10 + b"\0" * (2 * BS - 10)
    vfs.release(CTX, fh)


def test_open_trunc(vfs):
    ino = write_file(vfs, b"ot", b"old content")
    fh, attr = vfs.open(CTX, ino, os.O_WRONLY | os.O_TRUNC)
    assert attr.length == 0
    vfs.write(CTX, fh, 0, b"new")
    vfs.release(CTX, fh)
    assert read_file(vfs, ino) == b"new"
    fh, entry = vfs.create(CTX, ROOT, b"ot", 0o644, os.O_WRONLY | os.O_TRUNC)  # existing, no O_EXCL
    assert entry.inode == ino and entry.attr.length == 0
    vfs.release(CTX, fh)
    assert read_file(vfs, ino) == b""


def test_append(vfs):
    ino = write_file(vfs, b"log", b"first\n")
    fh1, _ = vfs.open(CTX, ino, os.O_WRONLY | os.O_APPEND)
    fh2, _ = vfs.open(CTX, ino, os.O_WRONLY | os.O_APPEND)
    vfs.write(CTX, fh1, 0, b"second\n")  # the offset is ignored: appends go to the end
    vfs.write(CTX, fh2, 3, b"third\n")
    vfs.release(CTX, fh1)
    vfs.release(CTX, fh2)
    assert read_file(vfs, ino) == b"first\nsecond\nthird\n"


def test_concurrent_appends_do_not_interleave(vfs):
    fh, ino = create(vfs, b"capp", flags=os.O_WRONLY | os.O_APPEND)
    lines = [[b"%d-%03d\n" % (t, i) for i in range(50)] for t in range(4)]

    def run(t: int) -> None:
        for line in lines[t]:
            vfs.write(CTX, fh, 0, line)

    threads = [threading.Thread(target=run, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    vfs.release(CTX, fh)
    got = read_file(vfs, ino).splitlines(keepends=True)
    assert sorted(got) == sorted(x for ls in lines for x in ls)


def test_parallel_writers_on_different_files(vfs):
    rnd = random.Random(4)
    datas = [rnd.randbytes(4 * BS + i) for i in range(4)]
    inos: list[int] = [0] * 4

    def run(i: int) -> None:
        inos[i] = write_file(vfs, b"par%d" % i, datas[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(4):
        assert read_file(vfs, inos[i]) == datas[i]


def test_small_buffer_budget_still_correct(mount):
    vfs = mount(buffer_size=256 * KIB)  # forces early slice commits while writing
    rnd = random.Random(5)
    data = rnd.randbytes(20 * BS)
    fh, ino = create(vfs, b"budget")
    for off in range(0, len(data), 3 * BS):
        vfs.write(CTX, fh, off, data[off:off + 3 * BS])
    vfs.release(CTX, fh)
    assert vfs.writer.buffered == 0
    assert read_file(vfs, ino) == data


def test_idle_slices_are_committed_in_background(vfs):
    fh, ino = create(vfs, b"idle")
    vfs.write(CTX, fh, 0, b"q" * 100)
    # without flush, the flusher thread commits the idle slice after about a second
    for _ in range(100):
        if vfs.meta.getattr(ino).length == 100:
            break
        threading.Event().wait(0.05)
    assert vfs.meta.getattr(ino).length == 100
    vfs.release(CTX, fh)


def test_write_to_read_only_handle(vfs):
    ino = write_file(vfs, b"ro", b"data")
    fh, _ = vfs.open(CTX, ino, os.O_RDONLY)
    with raises_errno(errno.EBADF):
        vfs.write(CTX, fh, 0, b"x")
    with raises_errno(errno.EBADF):
        vfs.fallocate(CTX, fh, 0, 0, 10)
    vfs.release(CTX, fh)
    fh, _ = vfs.open(CTX, ino, os.O_WRONLY)
    with raises_errno(errno.EBADF):
        vfs.read(CTX, fh, 0, 10)
    vfs.release(CTX, fh)
    with raises_errno(errno.EBADF):
        vfs.read(CTX, fh, 0, 10)  # released


def test_prefetched_data_is_dropped_after_own_write(vfs):
    data = random.Random(6).randbytes(16 * BS)
    ino = write_file(vfs, b"ra", data)
    fh, _ = vfs.open(CTX, ino, os.O_RDWR)
    for off in range(0, 4 * BS, 16 * KIB):  # sequential: readahead fetches the blocks ahead
        assert vfs.read(CTX, fh, off, 16 * KIB) == data[off:off + 16 * KIB]
    assert vfs.reader.used > 0
    vfs.write(CTX, fh, 5 * BS, b"N" * 100)  # pending, inside the prefetched range
    assert vfs.read(CTX, fh, 5 * BS - 10, 120) == data[5 * BS - 10:5 * BS] + b"N" * 100 + data[5 * BS + 100:5 * BS + 110]
    vfs.flush(CTX, fh, 0)
    vfs.write(CTX, fh, 6 * BS, b"M" * 10)
    vfs.flush(CTX, fh, 0)  # committed: pieces fetched before are stale and must not be used
    assert vfs.read(CTX, fh, 6 * BS, 12) == b"M" * 10 + data[6 * BS + 10:6 * BS + 12]
    vfs.release(CTX, fh)
    assert vfs.reader.used == 0
