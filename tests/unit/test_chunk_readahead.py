"""chunk.readahead: the prefetch policy, driven with a recording fetch(off, size) and no threads."""

from __future__ import annotations

from pyjuicefs.chunk.readahead import Readahead

BS = 1 << 20
LEN = 1 << 30


class Fetches(list):
    def __call__(self, off: int, size: int) -> None:
        self.append((off, size))


def make(max_ra: int = 8 * BS, budget: int = 64 * BS, length: int = LEN) -> tuple[Readahead, Fetches]:
    f = Fetches()
    return Readahead(f, BS, max_ra, budget, length), f


def test_sequential_reads_grow_the_window_to_max() -> None:
    ra, f = make()
    windows = []
    off = 0
    for _ in range(64):
        ra.on_read(off, 128 << 10)
        off += 128 << 10
        windows.append(ra.sessions[0].window)
    assert windows[0] == BS  # a read at 0 starts with one block
    assert max(windows) == 8 * BS
    assert windows == sorted(windows)  # only grows while reading stays sequential
    # pieces are block aligned, at most one block, never requested twice, contiguous from 128 KiB
    assert all(size <= BS and (off + size) % BS == 0 or off + size == LEN for off, size in f)
    assert len({o for o, _ in f}) == len(f)
    pos = 128 << 10
    for o, s in f:
        assert o == pos
        pos += s


def test_window_never_passes_the_file_end() -> None:
    ra, f = make(length=3 * BS + 100)
    off = 0
    while off < 3 * BS + 100:
        ra.on_read(off, 256 << 10)
        off += 256 << 10
    assert f and max(o + s for o, s in f) == 3 * BS + 100
    assert ra.on_read(5 * BS, 10) == []  # past the end


def test_random_reads_do_not_prefetch() -> None:
    ra, f = make()
    for off in [500 * BS + 7, 3 * BS + 11, 900 * BS + 3, 10 * BS + 1, 700 * BS + 5]:
        ra.on_read(off, 4096)
    assert f == []


def test_budget_limits_prefetch_and_release_returns_it() -> None:
    ra, f = make(max_ra=64 * BS, budget=4 * BS)
    off = 0
    for _ in range(200):
        ra.on_read(off, 256 << 10)
        off += 256 << 10
        assert ra.used <= 4 * BS + BS
    assert max(s.window for s in ra.sessions) <= BS  # the budget kept the window from growing
    for o, s in list(ra.requested.items()):
        ra.release(o, s)
    assert ra.used == 0
    before = len(f)
    ra.on_read(off, 256 << 10)
    assert len(f) > before  # budget back: prefetching resumes


def test_window_shrinks_when_memory_is_short() -> None:
    ra, _ = make(max_ra=16 * BS, budget=100 * BS)
    off = 0
    for _ in range(100):
        ra.on_read(off, BS)
        off += BS
    full = ra.sessions[0].window
    assert full == 16 * BS
    ra.used = 100 * BS  # someone else holds the whole budget
    ra.on_read(off, BS)
    assert ra.sessions[0].window == full // 2


def test_two_interleaved_streams_keep_their_own_sessions() -> None:
    ra, f = make()
    a, b = 0, 512 * BS
    for _ in range(40):
        ra.on_read(a, 128 << 10)
        ra.on_read(b, 128 << 10)
        a += 128 << 10
        b += 128 << 10
    wins = sorted(s.window for s in ra.sessions)
    assert wins[0] >= 2 * BS and wins[1] >= 2 * BS
    assert any(o < 512 * BS for o, _ in f) and any(o >= 512 * BS for o, _ in f)


def test_pieces_left_behind_are_dropped() -> None:
    dropped = Fetches()
    f = Fetches()
    ra = Readahead(f, BS, 4 * BS, 64 * BS, LEN, drop=dropped)
    off = 0
    for _ in range(200):
        ra.on_read(off, 256 << 10)
        off += 256 << 10
    assert dropped and all(o + s <= off for o, s in dropped)
    assert ra.used <= (4 * 2 + 2 + 2) * BS  # window ahead plus a little behind
    assert sorted(dropped + list((o, s) for o, s in ra.requested.items())) == sorted(f)


def test_truncate_forgets_pieces_past_the_end() -> None:
    ra, f = make()
    off = 0
    for _ in range(20):
        ra.on_read(off, 256 << 10)
        off += 256 << 10
    used = ra.used
    ra.set_length(off)
    assert ra.used < used
    assert all(o < off for o in ra.requested)
