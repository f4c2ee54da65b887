"""Readahead policy: decide what to prefetch after each read of a file. No threads, no I/O.

Modelled on JuiceFS pkg/vfs/reader.go (fileReader.checkReadahead / guessSession): a file keeps a
few read *sessions* (independent sequential streams, e.g. two readers of one handle). A read that
continues a session grows its sequential count; the session's window starts at one block once
reading looks sequential, doubles while reading stays sequential and memory allows, up to
`max_readahead`, and halves when memory is short or the stream stops looking sequential. The
window after the read is requested through `fetch(off, size)`, in block-aligned pieces, skipping
what was already requested. The caller owns the fetched data and calls release() when it drops
it, which returns the bytes to the memory budget. Pieces no session needs any more (far behind
or far ahead of every stream, as JuiceFS's fileReader.need) are released by the policy itself
and reported through `drop(off, size)` so the caller frees them.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class _Session:
    last: int = 0  # file offset just after the furthest read
    total: int = 0  # sequential bytes read in this session (0: unused)
    window: int = 0  # current readahead bytes
    atime: int = 0  # logical clock of the last use


class Readahead:
    """One per open file (not thread-safe: the file reader calls it under its lock)."""

    def __init__(
        self,
        fetch: Callable[[int, int], None],
        block_size: int,
        max_readahead: int,
        budget: int,
        length: int,
        sessions: int = 2,
        drop: Callable[[int, int], None] | None = None,
    ) -> None:
        self.fetch = fetch
        self.drop = drop
        self.block_size = block_size
        self.max_readahead = max_readahead
        self.budget = budget
        self.length = length
        self.sessions = [_Session() for _ in range(sessions)]
        self.requested: dict[int, int] = {}  # off -> size of pieces fetched and not released
        self.used = 0
        self._clock = itertools.count(1)

    # --- bookkeeping -----------------------------------------------------------------------------
    def release(self, off: int, size: int) -> None:
        """The piece fetched at (off, size) is consumed or dropped: its bytes leave the budget."""
        if self.requested.get(off) == size:
            del self.requested[off]
            self.used -= size

    def set_length(self, length: int) -> None:
        """The file was truncated or extended; forget pieces past the new end."""
        self.length = length
        for off, size in list(self.requested.items()):
            if off >= length:
                self.release(off, size)

    def _covered(self, off: int) -> int | None:
        """End of the requested piece containing off, or None."""
        for o, s in self.requested.items():
            if o <= off < o + s:
                return o + s
        return None

    def _needed(self, off: int, size: int) -> bool:
        """Whether a piece lies near a stream: from a little behind its end to twice its window
        (plus two blocks) ahead (JuiceFS fileReader.need)."""
        bs = self.block_size
        for s in self.sessions:
            if not s.total:
                continue
            back = max(s.window // 8, bs)
            lo, hi = max(0, s.last - back), s.last + 2 * s.window + 2 * bs
            if off < hi and lo < off + size:
                return True
        return False

    def _prune(self, off: int, size: int) -> None:
        for o, n in list(self.requested.items()):
            if not (o < off + size and off < o + n) and not self._needed(o, n):
                self.release(o, n)
                if self.drop is not None:
                    self.drop(o, n)

    # --- policy ----------------------------------------------------------------------------------
    def _session(self, off: int, size: int) -> _Session:
        """The session this read continues (JuiceFS guessSession), or a recycled one."""
        bs = self.block_size
        best: _Session | None = None
        for s in self.sessions:  # forward: at or a little after the end of a stream
            if s.total and s.last <= off <= s.last + s.window + bs and (best is None or s.last > best.last):
                best = s
        if best is None:  # slightly backward (re-reading the tail of a stream)
            for s in self.sessions:
                back = max(s.window // 8, bs)
                if s.total and max(0, s.last - back) <= off < s.last and (best is None or s.last < best.last):
                    best = s
        if best is None:
            best = next((s for s in self.sessions if s.total == 0), None) or min(self.sessions, key=lambda s: s.atime)
            best.last, best.total, best.window = off, size, 0
        elif off + size > best.last:
            best.total += off + size - best.last
        best.atime = next(self._clock)
        return best

    def on_read(self, off: int, size: int) -> list[tuple[int, int]]:
        """Account a read of [off, off+size); fetch and return the pieces to prefetch."""
        if size <= 0 or off >= self.length:
            return []
        size = min(size, self.length - off)
        bs, end = self.block_size, off + size
        ses = self._session(off, size)
        window = ses.window
        if window == 0 and bs <= self.max_readahead and (off == 0 or ses.total > size):
            ses.window = bs  # looks sequential: start with one block
        elif window < self.max_readahead and ses.total >= window and self.budget > self.used + window * 4:
            ses.window = min(window * 2, self.max_readahead)
        elif window >= bs and (self.budget < self.used + window // 2 or ses.total < window // 4):
            ses.window = window // 2
        ses.last = max(ses.last, end)
        self._prune(off, size)
        if ses.window < bs:
            return []
        return self._prefetch(end, ses.window)

    def _prefetch(self, off: int, size: int) -> list[tuple[int, int]]:
        """Request [off, off+size) rounded up to a block end, in pieces of at most one block, not
        past the file end, skipping requested pieces, while the budget allows."""
        bs = self.block_size
        end = min(off + size, self.length)
        if end % bs:
            end = min(end + bs - end % bs, self.length)
        out: list[tuple[int, int]] = []
        pos = off
        while pos < end:
            covered = self._covered(pos)
            if covered is not None:
                pos = covered
                continue
            if self.used >= self.budget:
                break
            n = min(end - pos, bs - pos % bs)
            nxt = min((o for o in self.requested if pos < o < pos + n), default=None)
            if nxt is not None:
                n = nxt - pos
            self.requested[pos] = n
            self.used += n
            out.append((pos, n))
            self.fetch(pos, n)
            pos += n
        return out
