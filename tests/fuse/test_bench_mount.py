"""`pyjuicefs bench` inside real mounts: the rows from the mount's `.stats` appear (differences of
its counters over the run), on a pyjuicefs mount and on a reference juicefs mount."""

from __future__ import annotations

import json
import os
import subprocess
import sys

MOUNT_ROWS = {"FUSE operation": "fuse", "Update meta": "meta", "Put object": "put", "Get object": "get",
              "Delete object": "delete", "Write into cache": "cachewr", "Read from cache": "cacherd"}
TINY = ("--big-file-size", "8", "--small-file-size", "64K", "--small-file-count", "10")


def bench(path: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SKIP_DROP_CACHES": "true"}
    return subprocess.run([sys.executable, "-m", "pyjuicefs", "bench", path, *TINY, *args], capture_output=True,
                          text=True, timeout=300, env=env)


def rows_of(out: str) -> dict[str, list[str]]:
    return {cells[0]: cells[1:] for cells in
            ([c.strip() for c in ln.strip("|").split("|")] for ln in out.splitlines() if ln.startswith("|"))}


def test_bench_on_pyjuicefs_mount(volume, pyjuicefs_mount):
    m = pyjuicefs_mount(volume("sqlite3"))
    sub = os.path.join(m.path, "deep", "er")
    os.makedirs(sub)
    p = bench(sub)  # the mount root is found by walking up from PATH
    assert p.returncode == 0, p.stderr
    rows = rows_of(p.stdout)
    for title in MOUNT_ROWS:
        assert title in rows, p.stdout
    count, cost = rows["FUSE operation"]
    assert count.endswith(" operations") and int(count.split()[0]) > 100
    assert cost.endswith(" ms/op")
    assert int(rows["Put object"][0].split()[0]) >= 8  # 8 MiB in 4 MiB blocks, plus the small files
    assert "Time used: " in p.stdout
    assert os.listdir(sub) == []

    p = bench(sub, "--json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["mount_point"] == m.path
    by_name = {x["name"]: x for x in doc["results"]}
    assert set(MOUNT_ROWS.values()) <= set(by_name)
    assert by_name["fuse"]["value"] > 0 and by_name["fuse"]["cost"] is not None
    assert by_name["put"]["value"] > 0
    assert doc["mount_usage"]["time_used"] > 0


def test_bench_on_reference_juicefs_mount(volume, juicefs_mount):
    m = juicefs_mount(volume("sqlite3"))
    p = bench(m.path, "--json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["mount_point"] == m.path
    by_name = {x["name"]: x for x in doc["results"]}
    # juicefs records every counter, with latencies
    for name in MOUNT_ROWS.values():
        assert by_name[name]["value"] is not None and by_name[name]["cost"] is not None, by_name[name]
    assert by_name["meta"]["value"] > 0 and by_name["put"]["value"] > 0
    assert doc["mount_usage"]["cpu_percent"] is not None and doc["mount_usage"]["memory_mib"] > 0
