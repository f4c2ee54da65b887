"""The etcd metadata engine: JuiceFS's TKV layout (tkv.py) in etcd v3, `etcd://host:port/prefix`.

Every key is the URL path + b"\\xfd" + the TKV key (pkg/meta/tkv_etcd.go), so a volume formatted by
either client is used by the other.

Transactions are optimistic, as JuiceFS's etcdTxn:
* reads go to etcd; the first read pins the store revision R and every later read of the same
  transaction asks for revision R, so a transaction sees one snapshot (JuiceFS reads the latest
  state each time; pinning only makes read-only transactions consistent too);
* writes are buffered; the commit is ONE etcd Txn whose compares say "nothing I read changed":
  mod_revision == what was seen for every key read (0 for a missing key), and for every scanned
  range mod_revision < R+1 (also catches keys created inside the range, which JuiceFS does not);
* a failed compare is a TxnConflict and tkv.KVClient.txn re-runs fn with backoff;
* a read-only transaction sends no commit.

etcd's limits (defaults of 3.4/3.5): at most 128 compares and 128 writes in one Txn, requests up to
1.5 MiB. Like JuiceFS, batched reads go in Txns of 128 range requests and scans page (by key count);
a write transaction is never split, because that would break its atomicity. When the per-key
compares of scanned keys do not fit, they are dropped and the range compares alone guard the scans
(they miss only a concurrent delete inside a scanned range); a transaction with more than 128
writes or key compares fails with a MetaError, as in JuiceFS.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from ..errors import MetaError, TransientMetaError, TxnConflict, UserError
from . import redact_url
from .etcd_http import MAX_TXN_OPS, EtcdHTTP, b64, unb64
from .etcd_url import parse_etcd_url
from .tkv import SETTING_KEY, KVClient, KVTxn, TKVEngine, next_key

logger = logging.getLogger(__name__)
T = TypeVar("T")

PAGE_SIZE = 1024  # keys per range request of a scan


class EtcdTxn(KVTxn):
    def __init__(self, client: "EtcdClient") -> None:
        super().__init__()
        self.c = client
        self.rev = 0  # the snapshot revision, pinned by the first read
        self.cache: dict[bytes, bytes | None] = {}
        self.seen: dict[bytes, int] = {}  # key read by get -> mod_revision (0: missing)
        self.scanned: dict[bytes, int] = {}  # key read by a scan -> mod_revision
        self.ranges: list[list[bytes]] = []  # [begin, covered end) of every scan

    # --- reads ---------------------------------------------------------------------------------
    def _range(self, begin: bytes, end: bytes | None, limit: int = 0) -> tuple[list[dict[str, Any]], bool]:
        body: dict[str, Any] = {"key": b64(self.c.prefix + begin)}
        if end is not None:
            body["range_end"] = b64(self.c.prefix + end)
        if limit > 0:
            body["limit"] = limit
        if self.rev:
            body["revision"] = self.rev
        out = self.c.http.call("/kv/range", body)
        self._pin(out)
        return out.get("kvs", []), bool(out.get("more"))

    def _pin(self, out: dict[str, Any]) -> None:
        if not self.rev:
            self.rev = int(out["header"]["revision"])

    def _remember(self, kv: dict[str, Any]) -> tuple[bytes, bytes, int]:
        key = unb64(kv["key"])[len(self.c.prefix):]
        value, mod = unb64(kv.get("value")), int(kv.get("mod_revision", 0))
        self.cache[key] = value
        return key, value, mod

    def _get(self, key: bytes) -> bytes | None:
        if key in self.cache:
            return self.cache[key]
        kvs, _ = self._range(key, None)
        if not kvs:
            self.cache[key] = None
            self.seen[key] = 0
            return None
        _, value, mod = self._remember(kvs[0])
        self.seen[key] = mod
        return value

    def gets(self, *keys: bytes) -> list[bytes | None]:
        missing = list(dict.fromkeys(k for k in keys if k not in self.writes and k not in self.cache))
        if len(missing) > 1:
            for i in range(0, len(missing), MAX_TXN_OPS):  # one round trip per 128 keys, as JuiceFS
                self._batch_get(missing[i:i + MAX_TXN_OPS])
        return [self.get(k) for k in keys]

    def _batch_get(self, keys: list[bytes]) -> None:
        if not self.rev:
            self._get(keys[0])  # pins the revision the batch reads at
            keys = keys[1:]
        ops = [{"request_range": {"key": b64(self.c.prefix + k), "revision": self.rev}} for k in keys]
        out = self.c.http.call("/kv/txn", {"success": ops})
        for k in keys:
            self.cache[k], self.seen[k] = None, 0
        for resp in out.get("responses", []):
            for kv in resp.get("response_range", {}).get("kvs", []):
                key, _, mod = self._remember(kv)
                self.seen[key] = mod

    def _scan(self, begin: bytes, end: bytes) -> list[tuple[bytes, bytes]]:
        return list(self._scan_store(begin, end, -1))

    def _scan_store(self, begin: bytes, end: bytes, want: int) -> Iterator[tuple[bytes, bytes]]:
        """The store's pairs in [begin, end), page by page; records what it covered."""
        covered = [begin, begin]
        self.ranges.append(covered)
        start = begin
        while True:
            page = self.c.page_size if want < 0 else max(1, min(self.c.page_size, want))
            kvs, more = self._range(start, end, page)
            items = []
            for kv in kvs:
                key, value, mod = self._remember(kv)
                self.scanned[key] = mod
                items.append((key, value))
            if more and items:
                start = items[-1][0] + b"\x00"  # the next page starts right after the last key
                covered[1] = start
            else:
                covered[1] = end
            yield from items
            if covered[1] == end:
                return

    def scan(self, begin: bytes, end: bytes, limit: int = -1) -> Iterator[tuple[bytes, bytes]]:
        """Store pairs merged with this txn's writes, fetching pages only as far as needed."""
        pending = sorted((k, v) for k, v in self.writes.items() if begin <= k < end)
        deletes = sum(1 for _, v in pending if v is None)
        want = -1 if limit < 0 else limit + deletes
        store = self._scan_store(begin, end, want)
        n = 0
        nxt = next(store, None)
        i = 0
        while nxt is not None or i < len(pending):
            if 0 <= limit <= n:
                return
            if i < len(pending) and (nxt is None or pending[i][0] <= nxt[0]):
                k, v = pending[i]
                i += 1
                if nxt is not None and nxt[0] == k:
                    nxt = next(store, None)
                if v is None:
                    continue
                item = (k, v)
            else:
                item, nxt = nxt, next(store, None)
            n += 1
            yield item

    # --- commit --------------------------------------------------------------------------------
    def commit(self) -> None:
        if not self.writes:
            return  # read only: a snapshot needs no validation
        cmps = [self._cmp_key(k, mod) for k, mod in self.seen.items()]
        by_range = [{"key": b64(self.c.prefix + b), "range_end": b64(self.c.prefix + e),
                     "target": "MOD", "result": "LESS", "mod_revision": self.rev + 1}
                    for b, e in {(b, e) for b, e in self.ranges if b < e}]
        by_scan = [self._cmp_key(k, mod) for k, mod in self.scanned.items() if k not in self.seen]
        if len(cmps) + len(by_range) + len(by_scan) <= self.c.max_txn_ops:
            cmps += by_scan
        elif by_scan:
            logger.debug("etcd txn: %d scanned keys guarded by %d range compares only", len(by_scan), len(by_range))
        cmps += by_range
        if len(cmps) > self.c.max_txn_ops or len(self.writes) > self.c.max_txn_ops:
            raise MetaError(f"transaction too large for etcd: {len(cmps)} compares and {len(self.writes)} writes "
                            f"(etcd allows {self.c.max_txn_ops} of each, its --max-txn-ops)")
        ops = []
        for k, v in self.writes.items():
            key = b64(self.c.prefix + k)
            if v is None:
                ops.append({"request_delete_range": {"key": key}})
            else:
                ops.append({"request_put": {"key": key, "value": b64(v)}})
        out = self.c.http.call("/kv/txn", {"compare": cmps, "success": ops})
        if not out.get("succeeded"):
            raise TxnConflict("conflicted transaction")

    def _cmp_key(self, key: bytes, mod: int) -> dict[str, Any]:
        return {"key": b64(self.c.prefix + key), "target": "MOD", "result": "EQUAL", "mod_revision": mod}


class EtcdClient(KVClient):
    """tkv.KVClient over etcd: one volume under one key prefix."""

    name = "etcd"

    def __init__(self, url: str) -> None:
        self.addr = parse_etcd_url(url)
        self.prefix = self.addr.prefix
        self.http = EtcdHTTP(self.addr)
        self.page_size = PAGE_SIZE
        self.max_txn_ops = MAX_TXN_OPS

    def _txn_once(self, fn: Callable[[KVTxn], T]) -> T:
        tx = EtcdTxn(self)
        result = fn(tx)
        tx.commit()
        return result

    def reset(self, prefix: bytes = b"") -> None:
        begin = self.prefix + prefix
        self.http.call("/kv/deleterange", {"key": b64(begin), "range_end": b64(next_key(begin))})

    def close(self) -> None:
        self.http.close()


class EtcdEngine(TKVEngine):
    """`etcd://[user:password@]host:port[,host:port...]/prefix[?cacert=&cert=&key=&server-name=]`"""

    def __init__(self, url: str, retries: int = 10) -> None:
        client = EtcdClient(url)
        super().__init__(client, retries=retries)
        self.etcd = client
        self.url = url
        self.safe_url = redact_url(url)

    def ping(self) -> float:
        """One read of the volume's settings: reachability, credentials and permissions, each
        failure a one-line UserError (never with the password)."""
        start = time.monotonic()
        try:
            self.etcd.http.call("/kv/range", {"key": b64(self.etcd.prefix + SETTING_KEY), "keys_only": True},
                                rounds=1)
        except TransientMetaError as e:
            raise UserError(f"metadata engine {self.safe_url}: {e}") from None
        except UserError:
            raise
        except MetaError as e:
            raise UserError(f"metadata engine {self.safe_url} is not usable: {e}") from None
        return time.monotonic() - start
