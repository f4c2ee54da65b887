"""An in-memory KV client for the TKV engine: `memkv://<name>`.

Instances with the same name share one store within the process, so two Meta objects opened on
`memkv://x` behave like two clients of one database. Transactions are optimistic: every read is
recorded with the version it saw (ranges with the versions of all their keys) and validated
under the store lock at commit; a changed read raises TxnConflict and the client re-runs it.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable
from typing import TypeVar

from ..errors import TxnConflict
from .tkv import KVClient, KVTxn, TKVEngine, next_key

T = TypeVar("T")


class _Store:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.data: dict[bytes, tuple[bytes, int]] = {}  # key -> (value, version)
        self.keys: list[bytes] = []  # sorted
        self.rev = 0

    def range(self, begin: bytes, end: bytes) -> list[bytes]:
        lo = bisect.bisect_left(self.keys, begin)
        hi = bisect.bisect_left(self.keys, end)
        return self.keys[lo:hi]


_stores: dict[str, _Store] = {}
_stores_lock = threading.Lock()


def _store(name: str) -> _Store:
    with _stores_lock:
        st = _stores.get(name)
        if st is None:
            st = _stores[name] = _Store()
        return st


class _MemTxn(KVTxn):
    def __init__(self, store: _Store) -> None:
        super().__init__()
        self.store = store
        self.reads: dict[bytes, int] = {}  # key -> version seen (0: absent)
        self.ranges: list[tuple[bytes, bytes, dict[bytes, int]]] = []

    def _get(self, key: bytes) -> bytes | None:
        with self.store.lock:
            item = self.store.data.get(key)
        if key not in self.reads:
            self.reads[key] = item[1] if item else 0
        return item[0] if item else None

    def _scan(self, begin: bytes, end: bytes) -> list[tuple[bytes, bytes]]:
        with self.store.lock:
            keys = self.store.range(begin, end)
            items = [(k, self.store.data[k]) for k in keys]
        self.ranges.append((begin, end, {k: ver for k, (_, ver) in items}))
        return [(k, v) for k, (v, _) in items]

    def valid(self) -> bool:
        """Whether every read still holds (caller holds the store lock)."""
        data = self.store.data
        for k, ver in self.reads.items():
            item = data.get(k)
            if (item[1] if item else 0) != ver:
                return False
        for begin, end, seen in self.ranges:
            keys = self.store.range(begin, end)
            if len(keys) != len(seen) or any(seen.get(k) != data[k][1] for k in keys):
                return False
        return True

    def commit(self) -> None:
        st = self.store
        with st.lock:
            if not self.valid():
                raise TxnConflict("write conflict")
            if not self.writes:
                return
            st.rev += 1
            for k, v in self.writes.items():
                if v is None:
                    if st.data.pop(k, None) is not None:
                        del st.keys[bisect.bisect_left(st.keys, k)]
                else:
                    if k not in st.data:
                        bisect.insort(st.keys, k)
                    st.data[k] = (v, st.rev)


class MemKVClient(KVClient):
    name = "memkv"

    def __init__(self, name: str) -> None:
        self.store = _store(name)

    def _txn_once(self, fn: Callable[[KVTxn], T]) -> T:
        tx = _MemTxn(self.store)
        try:
            result = fn(tx)
        except TxnConflict:
            raise
        except Exception:
            # an error computed from reads that changed meanwhile is a conflict, not an answer
            with self.store.lock:
                if not tx.valid():
                    raise TxnConflict("write conflict") from None
            raise
        tx.commit()
        return result

    def reset(self, prefix: bytes = b"") -> None:
        st = self.store
        with st.lock:
            for k in list(st.range(prefix, next_key(prefix)) if prefix else st.keys):
                del st.data[k]
            st.keys = sorted(st.data)
            st.rev += 1


class MemKVEngine(TKVEngine):
    """The TKV engine over a named in-process store (tests, and `memkv://` volumes)."""

    def __init__(self, url: str, retries: int = 10) -> None:
        name = url.split("://", 1)[1] if "://" in url else url
        super().__init__(MemKVClient(name or "default"), retries=retries)
        self.url = url
