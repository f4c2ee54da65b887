"""Measure the cost of the thread-hop design (docs/dev/concurrency.md):

    python -m pyjuicefs.fuse.bench META-URL [--count N] [--threads T]

The volume must be formatted. For each server mode a child process mounts the volume on a fresh
temp dir with attribute caching off (every stat is one GETATTR request), this process stats the same
file N times from T threads, then unmounts. Modes:
  empty-inline   getattr answers a prebuilt reply on the trio thread (the floor of FUSE + pyfuse3)
  empty-thread   the same reply, through trio.to_thread.run_sync + CapacityLimiter (the hop alone)
  vfs-inline     the real VFS called on the trio thread, blocking it (no hop; one request at a time)
  vfs-thread     the production adapter (FuseOps): the VFS in a worker thread
and `direct`: VFS.getattr in this process, no FUSE at all.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

MODES = ("empty-inline", "empty-thread", "vfs-inline", "vfs-thread")
FILE = "bench-stat-file"


def _open(meta_url: str) -> Any:
    from ..vfs import VFSConfig, open_volume

    # Names stay cached, attributes never: each stat is exactly one GETATTR request.
    return open_volume(meta_url, vfs_conf=VFSConfig(attr_timeout=0, entry_timeout=3600, dir_entry_timeout=3600))


def _server(mode: str, meta_url: str, mountpoint: str) -> None:
    import trio

    from .adapter import FuseOps
    from .session import serve

    vfs = _open(meta_url)
    counter = [0]

    class Ops(FuseOps):
        async def _call(self, op, ids, fn):  # type: ignore[override]
            counter[0] += 1
            if mode == "vfs-inline":
                return self._work(ids, fn)
            return await super()._call(op, ids, fn)

    class Empty(FuseOps):
        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, **kw)
            self.replies: dict[int, Any] = {}

        async def lookup(self, parent_inode: int, name: bytes, ctx: Any) -> Any:
            e = await super().lookup(parent_inode, name, ctx)
            self.replies[e.st_ino] = e
            return e

        async def getattr(self, inode: int, ctx: Any) -> Any:
            counter[0] += 1
            reply = self.replies.get(inode)
            if reply is None:
                return await super().getattr(inode, ctx)
            if mode == "empty-thread":
                return await trio.to_thread.run_sync(lambda: reply, limiter=self.limiter)
            return reply

    cls = Empty if mode.startswith("empty") else Ops
    ops = cls(vfs)
    try:
        serve(ops, mountpoint, {"fsname=pyjuicefs-bench", "default_permissions"})
    finally:
        vfs.close()
        print(f"requests {counter[0]}", flush=True)


def _wait_mounted(mp: str, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"bench server exited with {proc.returncode}")
        if os.path.ismount(mp):
            return
        time.sleep(0.05)
    raise SystemExit("bench server did not mount")


def _stat_loop(path: str, count: int, threads: int) -> float:
    """Seconds per stat (wall time / total stats)."""
    per = count // threads

    def work() -> None:
        for _ in range(per):
            os.stat(path)

    ts = [threading.Thread(target=work) for _ in range(threads)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return (time.perf_counter() - t0) / (per * threads)


def _run_mode(mode: str, meta_url: str, count: int, threads: int) -> tuple[float, str]:
    mp = tempfile.mkdtemp(prefix="pyjfs-bench-")
    proc = subprocess.Popen([sys.executable, "-m", "pyjuicefs.fuse.bench", "--serve", mode, meta_url, mp],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        _wait_mounted(mp, proc)
        path = os.path.join(mp, FILE)
        _stat_loop(path, max(threads, count // 10), threads)  # warm up
        secs = _stat_loop(path, count, threads)
    finally:
        subprocess.run(["fusermount3", "-u", mp], capture_output=True)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=30)
        if not os.path.ismount(mp):
            os.rmdir(mp)
    return secs, out.strip()


def _direct(meta_url: str, count: int) -> float:
    from ..meta.base_common import Context

    vfs = _open(meta_url)
    try:
        ctx = Context(check_permission=False)
        e = vfs.lookup(ctx, 1, FILE.encode())
        t0 = time.perf_counter()
        for _ in range(count):
            vfs.getattr(ctx, e.inode)
        return (time.perf_counter() - t0) / count
    finally:
        vfs.close()


def _prepare(meta_url: str) -> None:
    from ..meta.base_common import Context

    vfs = _open(meta_url)
    try:
        ctx = Context(check_permission=False)
        try:
            vfs.lookup(ctx, 1, FILE.encode())
        except OSError:
            fh, _ = vfs.create(ctx, 1, FILE.encode(), 0o100644, os.O_WRONLY)
            vfs.release(ctx, fh)
    finally:
        vfs.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pyjuicefs.fuse.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("meta_url", nargs="?")
    p.add_argument("--count", type=int, default=5000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--serve", nargs=3, metavar=("MODE", "META-URL", "MOUNTPOINT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve:
        _server(*args.serve)
        return 0
    if not args.meta_url:
        p.error("META-URL is required")
    _prepare(args.meta_url)
    print(f"{'mode':<14} {'µs/stat':>9} {'stats/s':>9}  (count {args.count}, threads {args.threads})")
    d = _direct(args.meta_url, args.count)
    print(f"{'direct':<14} {d * 1e6:9.1f} {1 / d:9.0f}  (VFS.getattr in-process, no FUSE)")
    for mode in args.modes.split(","):
        secs, out = _run_mode(mode, args.meta_url, args.count, args.threads)
        print(f"{mode:<14} {secs * 1e6:9.1f} {1 / secs:9.0f}  {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
