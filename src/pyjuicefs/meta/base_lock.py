"""File locks in the Meta API: BSD flock and POSIX range locks, shared by every client of the
volume through the engine (owners are (session id, lock owner) as JuiceFS records them).

A blocking request polls with a short backoff, as JuiceFS does; `timeout` bounds the wait.
"""

from __future__ import annotations

import errno
import fcntl
import time
from typing import TYPE_CHECKING

from . import codec
from .base_common import Context, err
from .engine import Txn

if TYPE_CHECKING:
    from .base import Meta

F_RDLCK, F_WRLCK, F_UNLCK = fcntl.F_RDLCK, fcntl.F_WRLCK, fcntl.F_UNLCK
MAX_OFFSET = (1 << 63) - 1

Record = tuple[int, int, int, int]  # (type, pid, start, end) — end inclusive


def update_locks(ls: list[Record], new: Record) -> list[Record]:
    """An owner's lock list after applying `new` (a lock or F_UNLCK): overlapped parts are cut
    away, then touching ranges of one type are merged."""
    ltype, _pid, start, end = new
    out: list[Record] = []
    for t, p, s, e in ls:
        if e < start or s > end:
            out.append((t, p, s, e))
            continue
        if s < start:
            out.append((t, p, s, start - 1))
        if e > end:
            out.append((t, p, end + 1, e))
    if ltype != F_UNLCK:
        out.append(new)
    out.sort(key=lambda r: r[2])
    merged: list[Record] = []
    for r in out:
        if merged and merged[-1][0] == r[0] and merged[-1][3] + 1 == r[2]:
            t, p, s, _ = merged[-1]
            merged[-1] = (t, p, s, r[3])
        else:
            merged.append(r)
    return merged


def _conflicts(ltype: int, start: int, end: int, other: Record) -> bool:
    return (ltype == F_WRLCK or other[0] == F_WRLCK) and end >= other[2] and start <= other[3]


class LockOps:
    def _poll(self: Meta, attempt, ltype: int, block: bool, timeout: float | None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.001 if ltype == F_WRLCK else 0.01
        while True:
            try:
                attempt()
                return
            except OSError as e:
                if e.errno != errno.EAGAIN or not block:
                    raise
            if deadline is not None and time.monotonic() >= deadline:
                raise err(errno.EINTR)
            time.sleep(delay)
            delay = min(delay * 1.5, 0.05)

    def flock(self: Meta, ctx: Context, ino: int, owner: int, ltype: int, block: bool = False,
              timeout: float | None = None) -> None:
        """BSD flock: F_RDLCK (shared), F_WRLCK (exclusive) or F_UNLCK; EAGAIN on conflict."""
        if ltype not in (F_RDLCK, F_WRLCK, F_UNLCK):
            raise err(errno.EINVAL)
        me = (self.sid, owner)

        def fn(tx: Txn) -> None:
            ls = tx.get_flocks(ino)
            if ltype == F_UNLCK:
                if me in ls:
                    tx.delete_flock(ino, *me)
                return
            others = {o: t for o, t in ls.items() if o != me}
            if ltype == F_RDLCK and any(t == "W" for t in others.values()):
                raise err(errno.EAGAIN)
            if ltype == F_WRLCK and others:
                raise err(errno.EAGAIN)
            want = "R" if ltype == F_RDLCK else "W"
            if ls.get(me) != want:
                tx.set_flock(ino, self.sid, owner, want)

        self._poll(lambda: self._txn(fn), ltype, block, timeout)

    def getlk(self: Meta, ctx: Context, ino: int, owner: int, ltype: int, start: int, end: int,
              pid: int) -> tuple[int, int, int, int]:
        """The first lock of another owner that conflicts: (type, start, end, pid), or F_UNLCK."""
        if ltype == F_UNLCK:
            return F_UNLCK, 0, 0, 0
        owners = self._txn(lambda tx: tx.get_plocks(ino), readonly=True)
        owners.pop((self.sid, owner), None)
        for (sid, _o), records in owners.items():
            for r in codec.decode_plock_records(records):
                if _conflicts(ltype, start, end, r):
                    return r[0], r[2], r[3], (r[1] if sid == self.sid else 0)
        return F_UNLCK, 0, 0, 0

    def setlk(self: Meta, ctx: Context, ino: int, owner: int, block: bool, ltype: int, start: int, end: int,
              pid: int, timeout: float | None = None) -> None:
        """Set or release a POSIX range lock [start, end] (end inclusive); EAGAIN on conflict."""
        if ltype not in (F_RDLCK, F_WRLCK, F_UNLCK) or start > end:
            raise err(errno.EINVAL)
        me = (self.sid, owner)
        new = (ltype, pid, start, end)

        def fn(tx: Txn) -> None:
            owners = tx.get_plocks(ino)
            mine = codec.decode_plock_records(owners.pop(me, b""))
            if ltype == F_UNLCK:
                if not mine:
                    return
            else:
                for records in owners.values():
                    for r in codec.decode_plock_records(records):
                        if _conflicts(ltype, start, end, r):
                            raise err(errno.EAGAIN)
            tx.set_plock(ino, self.sid, owner, codec.encode_plock_records(update_locks(mine, new)))

        self._poll(lambda: self._txn(fn), ltype, block, timeout)
