"""Side-by-side benchmark of a pyjuicefs mount and a reference `juicefs mount`.

Both clients get the same kind of volume: metadata in one Redis (a db each), data in a local `file`
bucket, the same block size, trash off. The reference runs with its disk cache off (--cache-size 0)
unless --reference-cache is given, because pyjuicefs has no disk cache yet: both then read from the
object storage. Workloads:

  seq write   one file of --size MiB, 1 MiB write() calls, timed until close() returns
  seq read    the same file after a remount and dropping the kernel page cache, 1 MiB read() calls
  small files N files of 4 KiB in one directory: create+write+close, stat, read, rename, unlink

Run as root (FUSE mounts; drop_caches): python benchmarks/bench_mount.py [--size 1024] [--files 2000]
Never part of the test suite. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "fuse"))
import services  # noqa: E402
from fsmodel import ClientMount, format_volume  # noqa: E402

MiB = 1 << 20
CLIENTS = ("pyjuicefs", "juicefs")


@dataclass
class Result:
    client: str
    rates: dict[str, float] = field(default_factory=dict)   # workload -> rate
    units: dict[str, str] = field(default_factory=dict)


def drop_caches() -> bool:
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


class Bench:
    def __init__(self, args: argparse.Namespace, redis_url_for, workdir: Path) -> None:
        self.args, self.redis_url_for, self.workdir = args, redis_url_for, workdir

    def mount(self, client: str, meta: str, mnt: Path) -> ClientMount:
        extra = []
        if client == "juicefs":
            extra += ["--cache-dir", str(self.workdir / "jfscache")]
            if not self.args.reference_cache:
                extra += ["--cache-size", "0"]
        return ClientMount(client, meta, str(mnt), *extra, juicefs_bin=self.args.juicefs,
                           log_path=str(self.workdir / f"{client}.mount.log"))

    def run(self, client: str, db: int) -> Result:
        meta = self.redis_url_for(db)
        bucket = self.workdir / f"bucket-{client}"
        format_volume(self.args.formatter or client, meta, f"bench-{client}", "--storage", "file",
                      "--bucket", f"{bucket}/", "--trash-days", "0", "--block-size", str(self.args.block_size),
                      juicefs_bin=self.args.juicefs)
        mnt = self.workdir / f"mnt-{client}"
        res = Result(client)
        m = self.mount(client, meta, mnt)
        try:
            self.seq_write(m.path, res)
        finally:
            m.umount()
        if not drop_caches():
            print("  (could not drop the page cache: not root? reads may be served from memory)", file=sys.stderr)
        m = self.mount(client, meta, mnt)
        try:
            self.seq_read(m.path, res)
            self.small_files(m.path, res)
        finally:
            m.umount()
        shutil.rmtree(bucket, ignore_errors=True)
        return res

    def seq_write(self, root: str, res: Result) -> None:
        buf = os.urandom(MiB)
        n = self.args.size
        t = time.perf_counter()
        with open(os.path.join(root, "big"), "wb", buffering=0) as f:
            for _ in range(n):
                f.write(buf)
        dt = time.perf_counter() - t
        res.rates["seq write"], res.units["seq write"] = n / dt, "MiB/s"

    def seq_read(self, root: str, res: Result) -> None:
        t = time.perf_counter()
        total = 0
        with open(os.path.join(root, "big"), "rb", buffering=0) as f:
            while chunk := f.read(MiB):
                total += len(chunk)
        dt = time.perf_counter() - t
        if total != self.args.size * MiB:
            raise SystemExit(f"read {total} bytes, expected {self.args.size * MiB}")
        res.rates["seq read"], res.units["seq read"] = total / MiB / dt, "MiB/s"

    def small_files(self, root: str, res: Result) -> None:
        n, data = self.args.files, os.urandom(4096)
        d = os.path.join(root, "small")
        os.mkdir(d)
        names = [os.path.join(d, f"f{i:06d}") for i in range(n)]

        def timed(label: str, fn) -> None:
            t = time.perf_counter()
            for p in names:
                fn(p)
            res.rates[label], res.units[label] = n / (time.perf_counter() - t), "files/s"

        def create(p: str) -> None:
            with open(p, "wb", buffering=0) as f:
                f.write(data)

        def read(p: str) -> None:
            with open(p, "rb", buffering=0) as f:
                if f.read() != data:
                    raise SystemExit(f"{p}: wrong content")

        timed("create 4K", create)
        timed("stat", os.stat)
        drop_caches()
        timed("read 4K", read)
        timed("rename", lambda p: os.rename(p, p + ".r"))
        names = [p + ".r" for p in names]
        timed("unlink", os.unlink)


def table(results: list[Result]) -> str:
    by = {r.client: r for r in results}
    labels = list(results[0].rates)
    head = f"{'workload':<12} {'unit':<8}" + "".join(f"{c:>12}" for c in by)
    if len(by) == 2:
        head += f"{'pyjfs/jfs':>12}"
    lines = [head, "-" * len(head)]
    for lab in labels:
        row = f"{lab:<12} {results[0].units[lab]:<8}" + "".join(f"{by[c].rates.get(lab, 0):>12.1f}" for c in by)
        if len(by) == 2:
            ref = by["juicefs"].rates.get(lab) or float("nan")
            row += f"{by['pyjuicefs'].rates.get(lab, 0) / ref:>12.2f}"
        lines.append(row)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=1024, help="MiB written then read sequentially (default 1024)")
    p.add_argument("--files", type=int, default=2000, help="number of 4 KiB files (default 2000)")
    p.add_argument("--block-size", type=int, default=4096, help="volume block size in KiB (default 4096)")
    p.add_argument("--clients", default=",".join(CLIENTS), help="comma-separated: pyjuicefs,juicefs")
    p.add_argument("--redis", help="use this Redis (redis://host:port) instead of starting one; dbs 14 and 15 "
                                   "are FLUSHED")
    p.add_argument("--formatter", choices=CLIENTS, help="format both volumes with this client "
                                                        "(default: each client formats its own)")
    p.add_argument("--reference-cache", action="store_true", help="keep the reference's disk cache on")
    p.add_argument("--juicefs", default=shutil.which("juicefs") or "juicefs", help="reference binary")
    p.add_argument("--workdir", help="where buckets, mount points and logs go (default: a temp dir, removed)")
    p.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("warning: not root; FUSE mounts or dropping caches may fail", file=sys.stderr)

    srv = None
    if args.redis:
        import redis

        base = args.redis.rstrip("/")

        def redis_url_for(db: int) -> str:
            redis.Redis.from_url(f"{base}/{db}").flushdb()
            return f"{base}/{db}"
    else:
        srv = services.RedisServer()
        srv.start()

        def redis_url_for(db: int) -> str:
            srv.flushdb(db)
            return srv.url(db)

    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="pyjfs-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    results = []
    try:
        for i, client in enumerate(c.strip() for c in args.clients.split(",")):
            print(f"== {client}: {args.size} MiB sequential, {args.files} small files", file=sys.stderr)
            t = time.perf_counter()
            results.append(Bench(args, redis_url_for, workdir).run(client, 14 + i))
            print(f"   done in {time.perf_counter() - t:.1f}s", file=sys.stderr)
    finally:
        if srv is not None:
            srv.stop()
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    print(table(results))
    if args.json:
        print(json.dumps([{"client": r.client, "rates": r.rates, "units": r.units} for r in results], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
