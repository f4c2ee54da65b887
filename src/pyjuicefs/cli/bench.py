"""`pyjuicefs bench PATH`: JuiceFS 1.4's basic file benchmark (cmd/bench.go) on any directory.

Each of --threads workers writes its big files then its small files under a temporary directory
`__pyjuicefs_benchmark_<ns>__` in PATH, in --block-size write() calls of random data; then reads
them back in the same blocks and stats the small ones. The kernel page cache is dropped between
phases as JuiceFS does (`echo 3 > /proc/sys/vm/drop_caches`, through sudo unless root), unless
SKIP_DROP_CACHES=true. When PATH is inside a JuiceFS/pyjuicefs mount, the mount's `.stats` is
read before and after, and the difference adds rows: FUSE operations, metadata transactions,
object requests and cache traffic (with their average latency when the mount records it).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import PyJuiceFSError, UserError
from . import bench_common as bc
from . import options as opt

log = logging.getLogger("pyjuicefs.cli")

HELP = """\
Run basic benchmarks on the target PATH to test if it works as expected. Results are colored with
green/yellow/red to indicate whether they are in a normal range. If you see any red value, please
double check relevant configuration before further test.

The kernel page cache is dropped between phases (as root, or through sudo); set
SKIP_DROP_CACHES=true to skip that.

Examples:
  # Run benchmarks with 4 threads
  pyjuicefs bench /mnt/jfs -p 4

  # Run benchmarks of only small files
  pyjuicefs bench /mnt/jfs --big-file-size 0

  # Results as JSON, for scripts
  pyjuicefs bench /mnt/jfs --json
"""

# JuiceFS's normal ranges: (value min, value max, cost min, cost max); small-file and stat value
# bounds are per thread.
RANGES: dict[str, tuple[float, float, float, float]] = {
    "bigwr": (100, 200, 10, 50),
    "bigrd": (100, 200, 10, 50),
    "smallwr": (12.5, 20, 50, 80),
    "smallrd": (50, 100, 10, 20),
    "stat": (20, 1000, 1, 5),
    "fuse": (0, 0, 0.5, 2),
    "meta": (0, 0, 2, 5),
    "put": (0, 0, 100, 200),
    "get": (0, 0, 100, 200),
    "delete": (0, 0, 30, 100),
    "cachewr": (0, 0, 10, 20),
    "cacherd": (0, 0, 1, 5),
}
PER_THREAD = ("smallwr", "smallrd", "stat")

# Rows from the mount's statistics: (title, range name, metric without the juicefs_ prefix).
MOUNT_ROWS = (
    ("FUSE operation", "fuse", "fuse_ops_durations_histogram_seconds"),
    ("Update meta", "meta", "transaction_durations_histogram_seconds"),
    ("Put object", "put", "object_request_durations_histogram_seconds_PUT"),
    ("Get object", "get", "object_request_durations_histogram_seconds_GET"),
    ("Delete object", "delete", "object_request_durations_histogram_seconds_DELETE"),
    ("Write into cache", "cachewr", "blockcache_write_hist_seconds"),
    ("Read from cache", "cacherd", "blockcache_read_hist_seconds"),
)


def register(sub: argparse._SubParsersAction) -> None:
    from .main import add_global_flags

    p = sub.add_parser("bench", help="Run benchmarks on a path", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path", metavar="PATH", nargs="?", help="a directory, usually in a mounted volume")
    p.add_argument("--block-size", default="1M", metavar="SIZE", help='size of each IO block in MiB (default: "1M")')
    p.add_argument("--big-file-size", default="1G", metavar="SIZE",
                   help='size of each big file in MiB; 0 skips big files (default: "1G")')
    p.add_argument("--small-file-size", default="128K", metavar="SIZE",
                   help='size of each small file in KiB (default: "128K")')
    p.add_argument("--small-file-count", default="100", metavar="N",
                   help="number of small files per thread (default: 100)")
    p.add_argument("-p", "--threads", default="1", metavar="N", help="number of concurrent threads (default: 1)")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object (no table)")
    add_global_flags(p)
    p.set_defaults(func=run)


# --- the benchmark ---------------------------------------------------------------------------


@dataclass
class Case:
    """Files of one kind: each thread writes `fcount` files of `bcount` blocks of `bsize` bytes."""

    name: str
    fsize: int
    fcount: int
    bsize: int
    bcount: int

    @classmethod
    def new(cls, name: str, fsize: int, fcount: int, bsize: int) -> "Case":
        # As JuiceFS: a file no bigger than a block is one block of its size; a bigger one is
        # rounded up to whole blocks.
        if fsize <= bsize:
            return cls(name, fsize, fcount, fsize, 1)
        bcount = (fsize - 1) // bsize + 1
        return cls(name, bcount * bsize, fcount, bsize, bcount)


class Bench:
    def __init__(self, tmpdir: str, threads: int, big: Case | None, small: Case | None) -> None:
        self.tmpdir, self.threads, self.big, self.small = tmpdir, threads, big, small
        self.drop_caches = CacheDropper()

    def fname(self, case: Case, index: int, i: int) -> str:
        return os.path.join(self.tmpdir, f"{case.name}.{index}.{i}")

    def write_files(self, case: Case, index: int, tick: Callable[[int], None]) -> None:
        for i in range(case.fcount):
            name = self.fname(case, index, i)
            buf = os.urandom(case.bsize)
            try:
                fd = os.open(name, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
            except OSError as e:
                raise PyJuiceFSError(f"Failed to open file {name!r}: {e.strerror or e}") from None
            try:
                for _ in range(case.bcount):
                    _write_all(fd, buf, name)
                    tick(1)
            finally:
                os.close(fd)

    def read_files(self, case: Case, index: int, tick: Callable[[int], None]) -> None:
        buf = bytearray(case.bsize)
        view = memoryview(buf)
        for i in range(case.fcount):
            name = self.fname(case, index, i)
            try:
                fd = os.open(name, os.O_RDONLY)
            except OSError as e:
                raise PyJuiceFSError(f"Failed to open file {name!r}: {e.strerror or e}") from None
            try:
                for _ in range(case.bcount):
                    n = _read_full(fd, view)
                    if n != case.bsize:
                        raise PyJuiceFSError(f"Failed to read file {name!r}: got {n} of {case.bsize} bytes")
                    tick(1)
            finally:
                os.close(fd)

    def stat_files(self, case: Case, index: int, tick: Callable[[int], None]) -> None:
        for i in range(case.fcount):
            name = self.fname(case, index, i)
            try:
                os.stat(name)
            except OSError as e:
                raise PyJuiceFSError(f"Failed to stat file {name!r}: {e.strerror or e}") from None
            tick(1)

    def run(self, fn: Callable[[Case, int, Callable[[int], None]], None], case: Case,
            tick: Callable[[int], None]) -> float:
        """Seconds for every thread to run fn on its own files; the first failure is raised."""
        errors: list[BaseException] = []

        def work(index: int) -> None:
            try:
                fn(case, index, tick)
            except BaseException as e:  # noqa: BLE001 - handed to the main thread
                errors.append(e)

        workers = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(self.threads)]
        start = time.monotonic()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        cost = time.monotonic() - start
        if errors:
            raise errors[0]
        return max(cost, 1e-9)


def _write_all(fd: int, buf: bytes, name: str) -> None:
    view = memoryview(buf)
    while view:
        try:
            n = os.write(fd, view)
        except OSError as e:
            raise PyJuiceFSError(f"Failed to write file {name!r}: {e.strerror or e}") from None
        view = view[n:]


def _read_full(fd: int, view: memoryview) -> int:
    got = 0
    while got < len(view):
        n = os.readv(fd, [view[got:]])
        if n == 0:
            break
        got += n
    return got


# --- kernel cache, mount statistics -----------------------------------------------------------


class CacheDropper:
    """Drops the kernel page cache as JuiceFS's bench does, unless SKIP_DROP_CACHES=true. The skip
    is said once, before the progress bars start: a log line would tear them on a terminal."""

    def __init__(self) -> None:
        self.warned = False

    def __call__(self) -> None:
        if os.environ.get("SKIP_DROP_CACHES") == "true" or sys.platform == "win32":
            if not self.warned:
                log.warning("Clear cache operation has been skipped")
                self.warned = True
            return
        if sys.platform == "darwin":
            argv = ["purge"]
        else:
            argv = ["/bin/sh", "-c", "echo 3 > /proc/sys/vm/drop_caches"]
        if os.getuid() != 0:
            argv = ["sudo", *argv]
        try:
            subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except (OSError, subprocess.CalledProcessError) as e:
            log.warning("Failed to clean kernel caches: %s", e)


def find_mount_root(path: str) -> str:
    """The root of the JuiceFS/pyjuicefs mount that holds path ('' if none): the topmost directory
    on path's device, when it is inode 1 and serves the internal `.stats` file."""
    try:
        dev = os.stat(path).st_dev
    except OSError:
        return ""
    d = path
    while True:
        parent = os.path.dirname(d)
        if parent == d:
            break
        try:
            if os.stat(parent).st_dev != dev:
                break
        except OSError:
            break
        d = parent
    try:
        if os.stat(d).st_ino == 1 and os.path.isfile(os.path.join(d, ".stats")):
            return d
    except OSError:
        pass
    return ""


def read_stats(mount_root: str) -> dict[str, float]:
    """`name value` lines of the mount's `.stats` (Prometheus text); {} if unreadable."""
    try:
        with open(os.path.join(mount_root, ".stats"), "rb") as f:
            text = f.read().decode(errors="replace")
    except OSError as e:
        log.warning("read %s/.stats: %s", mount_root, e.strerror or e)
        return {}
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) < 2:
            continue
        try:
            out[parts[0]] = float(parts[-1])
        except ValueError:
            continue
    return out


# --- results -------------------------------------------------------------------------------------


def make_row(item: str, key: str, value: float, unit: str, cost: float, cost_unit: str, prec: int,
             threads: int) -> bc.Row:
    r = list(RANGES[key])
    if key in PER_THREAD:
        r[0] *= threads
        r[1] *= threads
    vc, cc = bc.color_of(value, cost, r)
    return bc.Row(item, key, value, unit, cost, cost_unit, bc.go_float(value, prec), bc.go_float(cost, 2), vc, cc)


# Plain counters to fall back on for a count when a mount has no latency histogram of that metric.
COUNT_FALLBACKS = {"blockcache_write_hist_seconds": "juicefs_blockcache_write",
                   "blockcache_read_hist_seconds": "juicefs_blockcache_hits"}


def mount_rows(before: dict[str, float], after: dict[str, float], threads: int) -> list[bc.Row]:
    rows = []
    for title, key, metric in MOUNT_ROWS:
        total, total_sum = f"juicefs_{metric}_total", f"juicefs_{metric}_sum"
        if total not in after and COUNT_FALLBACKS.get(metric, "") in after:
            total, total_sum = COUNT_FALLBACKS[metric], ""
        if total not in after:
            # The mount does not record it: say so rather than print a made-up zero.
            rows.append(bc.Row(title, key, None, "operations", None, "ms/op", "n/a", "n/a"))
            continue
        count = after[total] - before.get(total, 0.0)
        if total_sum not in after:
            row = make_row(title, key, count, "operations", 0.0, "ms/op", 0, threads)
            row.cost, row.cost_text, row.cost_color = None, "n/a", None
            rows.append(row)
            continue
        cost = (after[total_sum] - before.get(total_sum, 0.0)) * 1000 / count if count > 0 else 0.0
        rows.append(make_row(title, key, count, "operations", cost, "ms/op", 0, threads))
    return rows


def usage_summary(before: dict[str, float], after: dict[str, float]) -> dict[str, float | None]:
    """Time used (s), CPU (%) and memory (MiB) of the mount during the run, when it reports them."""
    uptime = after.get("juicefs_uptime", 0.0) - before.get("juicefs_uptime", 0.0)
    cpu = None
    if "juicefs_cpu_usage" in after and uptime > 0:
        cpu = (after["juicefs_cpu_usage"] - before.get("juicefs_cpu_usage", 0.0)) * 100 / uptime
    mem = after["juicefs_memory"] / 1024 / 1024 if "juicefs_memory" in after else None
    return {"time_used": uptime if "juicefs_uptime" in after else None, "cpu_percent": cpu, "memory_mib": mem}


# --- the command -----------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    if not args.path:
        raise UserError("PATH is required: pyjuicefs bench PATH (a directory, usually in a mounted volume)")
    block = bc.size_arg(args.block_size, "M", "block-size", allow_zero=False)
    big = bc.size_arg(args.big_file_size, "M", "big-file-size", allow_zero=True)
    small = bc.size_arg(args.small_file_size, "K", "small-file-size", allow_zero=True)
    count = bc.count_arg(args.small_file_count, "small-file-count", allow_zero=True)
    threads = bc.count_arg(args.threads, "threads", allow_zero=False)
    path = os.path.abspath(args.path)
    if not os.path.exists(path):
        raise UserError(f"{args.path}: no such directory")
    if not os.path.isdir(path):
        raise UserError(f"{args.path} is not a directory")
    big_case = Case.new("bigfile", big, 1, block) if big > 0 else None
    small_case = Case.new("smallfile", small, count, block) if small > 0 and count > 0 else None
    if big_case is None and small_case is None:
        raise UserError("nothing to benchmark: both --big-file-size and --small-file-size (or "
                        "--small-file-count) are 0")

    tmpdir = os.path.join(path, f"__pyjuicefs_benchmark_{time.time_ns()}__")
    try:
        os.makedirs(tmpdir, 0o777, exist_ok=True)
    except OSError as e:
        raise UserError(f"Failed to create {tmpdir!r}: {e.strerror or e}") from None
    bm = Bench(tmpdir, threads, big_case, small_case)
    mount_root = find_mount_root(tmpdir)
    nc = bc.no_color(args)
    con = bc.console(no_color=nc)
    if os.getuid() != 0 and os.environ.get("SKIP_DROP_CACHES") != "true" and not args.json:
        con.print("Cleaning kernel cache, may ask for root privilege...", markup=False)
    try:
        bm.drop_caches()
        before = read_stats(mount_root) if mount_root else {}
        rows = _run_phases(bm, threads, nc)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
        if os.path.exists(tmpdir):
            log.warning("Failed to cleanup %r", tmpdir)
    extra: list[bc.Row] = []
    usage: dict[str, float | None] = {}
    if mount_root and before:
        after = read_stats(mount_root)
        extra = mount_rows(before, after, threads)
        usage = usage_summary(before, after)
    params = {"block_size": block, "big_file_size": big, "small_file_size": small,
              "small_file_count": count, "threads": threads}
    if args.json:
        doc: dict[str, Any] = {"path": path, **params, "mount_point": mount_root or None,
                               "results": [r.as_json() for r in rows + extra]}
        if mount_root:
            doc["mount_usage"] = usage
        print(json.dumps(doc, indent=2))
        return 0
    con.print("Benchmark finished!", markup=False)
    con.print(f"BlockSize: {opt.fmt_ibytes(block)}, BigFileSize: {opt.fmt_ibytes(big)}, "
              f"SmallFileSize: {opt.fmt_ibytes(small)}, SmallFileCount: {count}, NumThreads: {threads}",
              markup=False)
    if mount_root and usage:
        con.print(_usage_line(usage))
    bc.render_table(con, ("ITEM", "VALUE", "COST"), [bc.row_cells(r) for r in rows + extra])
    return 0


def _run_phases(bm: Bench, threads: int, nc: bool) -> list[bc.Row]:
    rows: list[bc.Row] = []
    with bc.progress_bars(nc) as bars:
        def phase(title: str, fn, case: Case, total: int) -> float:
            task = bars.add_task(title, total=total)
            cost = bm.run(fn, case, lambda n: bars.advance(task, n))
            bars.update(task, completed=total)
            return cost

        if (b := bm.big) is not None:
            total = threads * b.fcount * b.bcount
            mib = b.fsize / 1024 / 1024 * b.fcount * threads
            cost = phase("Write big blocks", bm.write_files, b, total)
            rows.append(make_row("Write big file", "bigwr", mib / cost, "MiB/s", cost / b.fcount, "s/file", 2, threads))
            bm.drop_caches()
            cost = phase("Read big blocks", bm.read_files, b, total)
            rows.append(make_row("Read big file", "bigrd", mib / cost, "MiB/s", cost / b.fcount, "s/file", 2, threads))
        if (s := bm.small) is not None:
            total = threads * s.fcount * s.bcount
            files = s.fcount * threads
            cost = phase("Write small blocks", bm.write_files, s, total)
            rows.append(make_row("Write small file", "smallwr", files / cost, "files/s", cost * 1000 / s.fcount,
                                 "ms/file", 1, threads))
            bm.drop_caches()
            cost = phase("Read small blocks", bm.read_files, s, total)
            rows.append(make_row("Read small file", "smallrd", files / cost, "files/s", cost * 1000 / s.fcount,
                                 "ms/file", 1, threads))
            bm.drop_caches()
            cost = phase("Stat small files", bm.stat_files, s, files)
            rows.append(make_row("Stat file", "stat", files / cost, "files/s", cost * 1000 / s.fcount,
                                 "ms/file", 1, threads))
    return rows


def _usage_line(u: dict[str, float | None]):
    from rich.text import Text

    t = Text("Time used: ")
    t.append(f"{u['time_used'] or 0.0:.1f}", style=bc.GREEN)
    t.append(" s")
    if u["cpu_percent"] is not None:
        t.append(", CPU: ")
        t.append(f"{u['cpu_percent']:.1f}", style=bc.GREEN)
        t.append("%")
    if u["memory_mib"] is not None:
        t.append(", Memory: ")
        t.append(f"{u['memory_mib']:.1f}", style=bc.GREEN)
        t.append(" MiB")
    return t
