"""The reference `juicefs bench` on a pyjuicefs mount and on a reference `juicefs mount`, side by side.

Both mounts serve volumes of the same services: one Redis (a db each) and a local `file` bucket
each, formatted alike by `pyjuicefs format` (trash off). The two are benchmarked alternately, round
after round (the order flips each round, so neither always runs on a warmer machine); each row's
median over the rounds is compared as pyjuicefs/juicefs. For VALUE (throughput, operation counts)
above 1 means pyjuicefs is faster/does more; for COST (latency) below 1 means pyjuicefs is faster.

The kernel page cache is NOT dropped between phases (SKIP_DROP_CACHES=true) unless --drop-caches.
Extra mount options for either client: --pyjuicefs-args / --juicefs-args (one quoted string).

Run as root (FUSE): python benchmarks/bench_vs_juicefs.py --big-file-size 256 --small-file-count 100
Never part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import services  # noqa: E402  (the test harness's Redis launcher)

CLIENTS = ("pyjuicefs", "juicefs")
ANSI = re.compile(r"\x1b\[[0-9;]*m")
NUMBER = re.compile(r"^([0-9.]+)\s*(.*)$")


def is_mounted(path: str) -> bool:
    target = os.path.realpath(path).replace(" ", "\\040")
    with open("/proc/self/mounts") as f:
        return any(line.split(" ")[1] == target for line in f if line.strip())


class ClientMount:
    """One client's foreground mount in a child process (own session), always unmounted by close()."""

    def __init__(self, client: str, juicefs: str, meta_url: str, path: Path, cache: Path, extra: list[str]) -> None:
        self.client, self.path = client, str(path)
        path.mkdir(parents=True, exist_ok=True)
        if client == "juicefs":
            argv = [juicefs, "--no-agent", "mount", meta_url, self.path, "--no-usage-report", "--no-syslog",
                    "--cache-dir", str(cache), *extra]
            self.umount_cmd = [juicefs, "umount", self.path]
        else:
            argv = [sys.executable, "-m", "pyjuicefs", "mount", meta_url, self.path, *extra]
            self.umount_cmd = [sys.executable, "-m", "pyjuicefs", "umount", self.path]
        self.log_path = str(path) + ".log"
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.close()
                raise SystemExit(f"{client} mount exited with {self.proc.returncode}; see {self.log_path}")
            if is_mounted(self.path) and os.stat(self.path).st_ino == 1:
                return
            time.sleep(0.05)
        self.close()
        raise SystemExit(f"{client} mount not ready after 60s; see {self.log_path}")

    def close(self) -> None:
        for cmd in (self.umount_cmd, ["fusermount3", "-u", self.path], ["fusermount3", "-u", "-z", self.path]):
            if not is_mounted(self.path):
                break
            subprocess.run(cmd, capture_output=True, timeout=60)
        if self.proc.poll() is None:
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=30)
        self._log.close()


def parse_bench(out: str) -> dict[str, tuple[float, str, float, str]]:
    """ITEM -> (value, unit, cost, cost unit) of `juicefs bench`'s table."""
    rows = {}
    for line in ANSI.sub("", out).splitlines():
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) != 3 or cells[0] == "ITEM":
            continue
        v, c = NUMBER.match(cells[1]), NUMBER.match(cells[2])
        if v and c:
            rows[cells[0]] = (float(v[1]), v[2], float(c[1]), c[2])
    return rows


def run_bench(juicefs: str, mnt: str, args: argparse.Namespace) -> dict[str, tuple[float, str, float, str]]:
    env = dict(os.environ)
    if not args.drop_caches:
        env["SKIP_DROP_CACHES"] = "true"
    argv = [juicefs, "bench", mnt, "--block-size", args.block_size, "--big-file-size", args.big_file_size,
            "--small-file-size", args.small_file_size, "--small-file-count", str(args.small_file_count),
            "-p", str(args.threads)]
    p = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=3600)
    if p.returncode != 0:
        raise SystemExit(f"juicefs bench on {mnt} failed ({p.returncode}):\n{p.stderr[-2000:]}")
    return parse_bench(p.stdout)


def ratio(a: float, b: float) -> str:
    # A 0 on either side is a counter the mount does not record (juicefs bench prints 0 for it).
    if a == 0 or b == 0:
        return "-"
    return f"{a / b:.2f}"


def fmt(x: tuple[float, str, float, str] | None, i: int) -> str:
    if x is None:
        return "n/a"
    return f"{x[i]:.0f} {x[i + 1]}" if x[i + 1] == "operations" else f"{x[i]:.2f} {x[i + 1]}"


def report(results: dict[str, list[dict]], as_json: bool) -> None:
    items = list(results["juicefs"][0])
    for it in results["pyjuicefs"][0]:
        if it not in items:
            items.append(it)
    table = []
    for it in items:
        med = {}
        for c in CLIENTS:
            runs = [r[it] for r in results[c] if it in r]
            med[c] = (statistics.median(x[0] for x in runs), runs[0][1], statistics.median(x[2] for x in runs),
                      runs[0][3]) if runs else None
        table.append((it, med["pyjuicefs"], med["juicefs"]))
    if as_json:
        print(json.dumps([{"item": it, "pyjuicefs": p, "juicefs": j,
                           "value_ratio": p[0] / j[0] if p and j and j[0] else None,
                           "cost_ratio": p[2] / j[2] if p and j and j[2] else None} for it, p, j in table], indent=2))
        return
    head = ("ITEM", "pyjuicefs VALUE", "juicefs VALUE", "ratio", "pyjuicefs COST", "juicefs COST", "ratio")
    lines = [head]
    for it, p, j in table:
        lines.append((it, fmt(p, 0), fmt(j, 0), ratio(p[0], j[0]) if p and j else "-",
                      fmt(p, 2), fmt(j, 2), ratio(p[2], j[2]) if p and j else "-"))
    widths = [max(len(str(r[i])) for r in lines) for i in range(len(head))]
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    print(rule)
    for n, r in enumerate(lines):
        print("| " + " | ".join(str(c).rjust(w) if n else str(c).center(w) for c, w in zip(r, widths)) + " |")
        if n == 0:
            print(rule)
    print(rule)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--block-size", default="1M")
    ap.add_argument("--big-file-size", default="256", help="MiB (default 256)")
    ap.add_argument("--small-file-size", default="128K")
    ap.add_argument("--small-file-count", type=int, default=100)
    ap.add_argument("-p", "--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--drop-caches", action="store_true", help="let juicefs bench drop the kernel page cache")
    ap.add_argument("--pyjuicefs-args", default="", help="extra `pyjuicefs mount` options")
    ap.add_argument("--juicefs-args", default="", help="extra `juicefs mount` options")
    ap.add_argument("--juicefs", default=shutil.which("juicefs") or "juicefs", help="the reference binary")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="pyjfs-benchvs-"))
    redis = services.RedisServer().start()
    mounts: dict[str, ClientMount] = {}
    try:
        for i, client in enumerate(CLIENTS):
            url = redis.url(redis.next_db())
            bucket = work / f"bucket-{client}"
            bucket.mkdir()
            p = subprocess.run([sys.executable, "-m", "pyjuicefs", "format", url, f"bench{i}", "--storage", "file",
                                "--bucket", f"{bucket}/", "--trash-days", "0"], capture_output=True, text=True)
            if p.returncode != 0:
                raise SystemExit(f"format failed: {p.stderr[-2000:]}")
            extra = shlex.split(args.pyjuicefs_args if client == "pyjuicefs" else args.juicefs_args)
            mounts[client] = ClientMount(client, args.juicefs, url, work / f"mnt-{client}", work / "cache", extra)
        results: dict[str, list[dict]] = {c: [] for c in CLIENTS}
        for rnd in range(args.rounds):
            order = CLIENTS if rnd % 2 == 0 else CLIENTS[::-1]
            for client in order:
                t0 = time.monotonic()
                results[client].append(run_bench(args.juicefs, mounts[client].path, args))
                print(f"round {rnd + 1}/{args.rounds}: {client} {time.monotonic() - t0:.1f}s", file=sys.stderr)
        if not args.json:
            print(f"juicefs bench --block-size {args.block_size} --big-file-size {args.big_file_size} "
                  f"--small-file-size {args.small_file_size} --small-file-count {args.small_file_count} "
                  f"-p {args.threads}; median of {args.rounds} rounds; ratio = pyjuicefs/juicefs")
        report(results, args.json)
    finally:
        for m in mounts.values():
            m.close()
        redis.stop()
        if not any(is_mounted(str(work / f"mnt-{c}")) for c in CLIENTS):
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"left {work} in place: something is still mounted there", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
