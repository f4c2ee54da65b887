"""Peak memory of a pyjuicefs client under a big sequential write with a small --buffer-size.

Formats a volume (SQLite metadata, a local `file` bucket, both in a temp dir), mounts it with
`--buffer-size 64` (and its disk cache in the temp dir), writes --size MiB (default 2048) into one
file in 1 MiB write() calls, and prints the client's peak resident size (VmHWM of
/proc/<pid>/status, sampled along the way and read at the end) next to its size before the write.
A benchmark: no assertion, no part of the test suite.

Run as root (FUSE): python benchmarks/bench_memory.py [--size 2048] [--buffer-size 64] [-- extra mount args]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

MiB = 1 << 20


def status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def wait_mounted(mp: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"mount exited with {proc.returncode}")
        if os.path.ismount(mp):
            return
        time.sleep(0.1)
    raise SystemExit("mount timed out")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=2048, help="MiB to write (default 2048)")
    ap.add_argument("--buffer-size", default="64", help="--buffer-size of the mount in MiB (default 64)")
    ap.add_argument("extra", nargs="*", help="more mount arguments (after --)")
    a = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="pyjfs-benchmem-")
    mp = os.path.join(tmp, "mnt")
    os.mkdir(mp)
    url = f"sqlite3://{tmp}/meta.db"
    py = [sys.executable, "-m", "pyjuicefs"]
    proc = None
    try:
        subprocess.run([*py, "format", url, "benchmem", "--storage", "file", "--bucket", f"{tmp}/bucket/",
                        "--trash-days", "0"], check=True, capture_output=True, timeout=120)
        log = open(os.path.join(tmp, "mount.log"), "wb")
        proc = subprocess.Popen([*py, "mount", url, mp, "--buffer-size", a.buffer_size,
                                 "--cache-dir", os.path.join(tmp, "cache"), *a.extra],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        wait_mounted(mp, proc)
        before = status_kib(proc.pid, "VmRSS")
        buf = os.urandom(MiB)
        peak_rss = before
        start = time.monotonic()
        with open(os.path.join(mp, "big"), "wb") as f:
            for i in range(a.size):
                f.write(buf)
                if i % 64 == 0:
                    peak_rss = max(peak_rss, status_kib(proc.pid, "VmRSS"))
        took = time.monotonic() - start
        hwm = status_kib(proc.pid, "VmHWM")
        print(f"wrote {a.size} MiB in {took:.1f}s ({a.size / took:.0f} MiB/s) with --buffer-size {a.buffer_size}")
        print(f"client RSS before the write: {before / 1024:.0f} MiB")
        print(f"client peak RSS (VmHWM): {hwm / 1024:.0f} MiB (sampled VmRSS max {peak_rss / 1024:.0f} MiB)")
    finally:
        if proc is not None:
            subprocess.run(["fusermount3", "-u", mp], capture_output=True)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        if not os.path.ismount(mp):
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
