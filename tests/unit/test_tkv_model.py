"""Random namespace operations on Meta over memkv, checked against a plain Python model:
same errno, same listings, same nlink and usage counters after every step."""

from __future__ import annotations

import errno
import uuid

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from pyjuicefs.format import Format
from pyjuicefs.meta import new_engine
from pyjuicefs.meta.base import ROOT_CTX, Meta, MetaConfig
from pyjuicefs.meta.types import RENAME_EXCHANGE, RENAME_NOREPLACE, TYPE_DIRECTORY

NAMES = st.sampled_from(["a", "b", "c"])
Path = tuple[str, ...]


class NamespaceModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.meta = Meta(new_engine(f"memkv://{uuid.uuid4()}"), MetaConfig(dir_stat_flush_period=0))
        self.meta.init(Format(Name="model", UUID=str(uuid.uuid4()), TrashDays=0))
        self.meta.load()
        self.kind: dict[Path, str] = {(): "d"}  # path -> "d" (directory) or "f"
        self.ino: dict[Path, int] = {(): 1}

    # --- model helpers ---------------------------------------------------------------------------
    def dirs(self) -> list[Path]:
        return sorted(p for p, k in self.kind.items() if k == "d")

    def children(self, p: Path) -> list[Path]:
        return [q for q in self.kind if len(q) == len(p) + 1 and q[:-1] == p]

    def call(self, expect: int, fn, *args):
        try:
            result = fn(*args)
        except OSError as e:
            assert e.errno == expect, f"{fn.__name__}{args[1:]}: got {errno.errorcode.get(e.errno)}, " \
                                      f"model says {errno.errorcode.get(expect, 'OK')}"
            return None
        assert expect == 0, f"{fn.__name__}{args[1:]} succeeded; model says {errno.errorcode[expect]}"
        return result

    def move(self, src: Path, dst: Path) -> None:
        for p in sorted(self.kind):
            if p[:len(src)] == src:
                np = dst + p[len(src):]
                self.kind[np], self.ino[np] = self.kind.pop(p), self.ino.pop(p)

    # --- rules --------------------------------------------------------------------------------------
    @rule(data=st.data(), name=NAMES, is_dir=st.booleans())
    def make(self, data, name, is_dir):
        parent = data.draw(st.sampled_from(self.dirs()))
        path = parent + (name,)
        expect = errno.EEXIST if path in self.kind else 0
        if is_dir:
            r = self.call(expect, self.meta.mkdir, ROOT_CTX, self.ino[parent], name, 0o755)
        else:
            r = self.call(expect, self.meta.create, ROOT_CTX, self.ino[parent], name, 0o644, 0o200)  # O_EXCL
            if r:
                self.meta.close(ROOT_CTX, r[0])
        if r:
            self.kind[path], self.ino[path] = ("d" if is_dir else "f"), r[0]

    @rule(data=st.data(), name=NAMES)
    def remove(self, data, name):
        parent = data.draw(st.sampled_from(self.dirs()))
        path = parent + (name,)
        kind = self.kind.get(path)
        if kind == "d":
            expect = errno.ENOTEMPTY if self.children(path) else 0
            self.call(errno.EPERM, self.meta.unlink, ROOT_CTX, self.ino[parent], name)
            self.call(expect, self.meta.rmdir, ROOT_CTX, self.ino[parent], name)
        else:
            self.call(errno.ENOTDIR if kind else errno.ENOENT, self.meta.rmdir, ROOT_CTX, self.ino[parent], name)
            self.call(0 if kind else errno.ENOENT, self.meta.unlink, ROOT_CTX, self.ino[parent], name)
            expect = 0
        if kind and expect == 0:
            self.kind.pop(path)
            self.ino.pop(path)

    @rule(data=st.data(), n1=NAMES, n2=NAMES, flags=st.sampled_from([0, RENAME_NOREPLACE, RENAME_EXCHANGE]))
    def rename(self, data, n1, n2, flags):
        p1 = data.draw(st.sampled_from(self.dirs()))
        p2 = data.draw(st.sampled_from(self.dirs()))
        src, dst = p1 + (n1,), p2 + (n2,)
        sk, dk = self.kind.get(src), self.kind.get(dst)

        def inside(a: Path, b: Path) -> bool:  # b is a or below a
            return b[:len(a)] == a

        if sk is None:
            expect = errno.ENOENT
        elif sk == "d" and inside(src, p2) and src != dst:
            expect = errno.EINVAL
        elif flags == RENAME_EXCHANGE and dk == "d" and inside(dst, p1) and src != dst:
            expect = errno.EINVAL
        elif src == dst:
            expect = 0
        elif dk is None:
            expect = errno.ENOENT if flags == RENAME_EXCHANGE else 0
        elif flags == RENAME_NOREPLACE:
            expect = errno.EEXIST
        elif flags == RENAME_EXCHANGE:
            expect = 0
        elif sk == "d" and dk == "f":
            expect = errno.ENOTDIR
        elif sk == "f" and dk == "d":
            expect = errno.EISDIR
        elif dk == "d" and self.children(dst):
            expect = errno.ENOTEMPTY
        else:
            expect = 0
        r = self.call(expect, self.meta.rename, ROOT_CTX, self.ino[p1], n1, self.ino[p2], n2, flags)
        if r is None or src == dst:
            return
        if flags == RENAME_EXCHANGE:
            tmp = ("\0tmp",)
            self.move(src, tmp)
            self.move(dst, src)
            self.move(tmp, dst)
        else:
            for p in [q for q in self.kind if q[:len(dst)] == dst]:
                self.kind.pop(p)
                self.ino.pop(p)
            self.move(src, dst)

    # --- invariants ----------------------------------------------------------------------------------
    @invariant()
    def same_tree(self):
        for d in self.dirs():
            entries = self.meta.readdir(ROOT_CTX, self.ino[d])
            got = sorted((e.name.decode(), e.inode) for e in entries[2:])
            want = sorted((c[-1], self.ino[c]) for c in self.children(d))
            assert got == want, f"listing of {d}"
            subdirs = sum(1 for c in self.children(d) if self.kind[c] == "d")
            assert self.meta.getattr(self.ino[d]).nlink == 2 + subdirs
            if d:
                assert entries[1].inode == self.ino[d[:-1]]
        nodes = len(self.kind) - 1
        assert self.meta.counters() == {"usedSpace": 4096 * nodes, "totalInodes": nodes}
        for p, k in self.kind.items():
            if p:
                assert (self.meta.getattr(self.ino[p]).typ == TYPE_DIRECTORY) == (k == "d")


TestNamespaceModel = NamespaceModel.TestCase
TestNamespaceModel.settings = settings(max_examples=60, stateful_step_count=25, deadline=None)
