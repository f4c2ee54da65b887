"""The TKV key layout (golden bytes written by the reference juicefs 1.4.2 into etcd, prefix
stripped), the memkv client's optimistic transactions, and the pure helpers of the Meta layer."""

from __future__ import annotations

import fcntl
import threading
import uuid

import pytest

from pyjuicefs.errors import TxnConflict
from pyjuicefs.format import Format
from pyjuicefs.meta import new_engine, tkv
from pyjuicefs.meta.base import Meta
from pyjuicefs.meta.base_lock import update_locks
from pyjuicefs.meta.memkv import MemKVClient
from pyjuicefs.meta.types import TRASH_INODE, Slice


def test_keys_match_reference_layout():
    # captured from `juicefs format ... etcd://host/jfs vol` (etcd key prefix b"/jfs\xfd" removed)
    assert tkv.inode_key(1) == b"A\x01\x00\x00\x00\x00\x00\x00\x00I"
    assert tkv.inode_key(TRASH_INODE) == b"A\x00\x00\x00\x10\xff\xff\xff\x7fI"
    assert tkv.counter_key("nextInode") == b"CnextInode"
    assert tkv.pack_counter(2) == b"\x02\x00\x00\x00\x00\x00\x00\x00"
    # layouts from pkg/meta/tkv.go: inodes little-endian, other integers big-endian
    assert tkv.entry_key(2, b"x") == b"A\x02" + b"\0" * 7 + b"Dx"
    assert tkv.chunk_key(2, 1) == b"A\x02" + b"\0" * 7 + b"C\x00\x00\x00\x01"
    assert tkv.parent_key(3, 2) == b"A\x03" + b"\0" * 7 + b"P\x02" + b"\0" * 7
    assert tkv.slice_key(5, 4096) == b"K" + b"\0" * 7 + b"\x05\x00\x00\x10\x00"
    assert tkv.delfile_key(3, 10) == b"D\x03" + b"\0" * 7 + b"\0" * 7 + b"\x0a"
    assert tkv.session_key(1) == b"SE" + b"\0" * 7 + b"\x01"
    assert tkv.sustained_key(1, 3) == b"SS" + b"\0" * 7 + b"\x01\x03" + b"\0" * 7
    assert tkv.dir_stat_key(1) == b"U\x01" + b"\0" * 7
    assert tkv.pack_i64(1) == b"\0" * 7 + b"\x01"


def test_init_writes_what_juicefs_format_writes():
    url = f"memkv://{uuid.uuid4()}"
    m = Meta(new_engine(url))
    m.init(Format(Name="vol", UUID=str(uuid.uuid4()), Bucket="/tmp/b/"))
    client = m.engine.client
    keys = client.txn(lambda tx: dict(tx.scan(b"", b"\xff")))
    assert sorted(keys) == sorted([b"setting", b"CnextChunk", b"CnextInode", tkv.inode_key(1),
                                   tkv.inode_key(TRASH_INODE)])
    assert keys[b"CnextChunk"] == tkv.pack_counter(1)
    assert keys[b"CnextInode"] == tkv.pack_counter(2)
    assert len(keys[tkv.inode_key(1)]) == 72


def test_lock_values_round_trip():
    fl = {(1, 2): "W", (3, 4): "R"}
    assert tkv.decode_flocks(tkv.encode_flocks(fl)) == fl
    assert len(tkv.encode_flocks({(1, 2): "R"})) == 17
    pl = {(1, 2): b"x" * 24, (3, 4): b""}
    assert tkv.decode_plocks(tkv.encode_plocks(pl)) == pl


def test_memkv_txn_reads_own_writes_and_scans():
    c = MemKVClient(str(uuid.uuid4()))

    def fn(tx):
        tx.set(b"a1", b"1")
        tx.set(b"a2", b"2")
        tx.delete(b"a1")
        assert tx.get(b"a2") == b"2"
        assert tx.incr_by(b"n", 5) == 5
        return list(tx.scan_prefix(b"a"))

    assert c.txn(fn) == [(b"a2", b"2")]
    assert c.txn(lambda tx: tx.incr_by(b"n", 0)) == 5
    c.reset(b"a")
    assert c.txn(lambda tx: list(tx.scan(b"", b"\xff"))) == [(b"n", tkv.pack_counter(5))]


def test_memkv_conflicts_are_detected_and_retried():
    c = MemKVClient(str(uuid.uuid4()))
    from pyjuicefs.meta.memkv import _MemTxn

    a, b = _MemTxn(c.store), _MemTxn(c.store)
    a.get(b"k")
    list(b.scan_prefix(b"k"))
    a.set(b"k", b"a")
    b.set(b"k2", b"b")
    a.commit()
    with pytest.raises(TxnConflict):
        b.commit()  # its range read saw no "k", which now exists

    def incr(_):
        for _ in range(50):
            c.txn(lambda tx: tx.incr_by(b"counter", 1))

    threads = [threading.Thread(target=incr, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert c.txn(lambda tx: tx.incr_by(b"counter", 0)) == 200


def test_update_locks():
    W, R, U = fcntl.F_WRLCK, fcntl.F_RDLCK, fcntl.F_UNLCK
    ls = update_locks([], (W, 1, 0, 99))
    ls = update_locks(ls, (W, 1, 100, 199))
    assert ls == [(W, 1, 0, 199)]
    ls = update_locks(ls, (U, 1, 50, 59))
    assert ls == [(W, 1, 0, 49), (W, 1, 60, 199)]
    ls = update_locks(ls, (R, 1, 40, 70))
    assert ls == [(W, 1, 0, 39), (R, 1, 40, 70), (W, 1, 71, 199)]
    assert update_locks(ls, (U, 1, 0, (1 << 63) - 1)) == []
