"""Observability of a real pyjuicefs mount: `.stats` counts FUSE requests, metadata transactions
and object requests (with latencies); `--metrics` serves the same over HTTP with the volume's
labels; `.accesslog` streams one JuiceFS-format line per request while it is read; and
`pyjuicefs bench` finds every row it reads from `.stats`."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import services
from services import pyjuicefs_cli as cli
from prometheus_client.parser import text_string_to_metric_families

LOG_INODE = 0x7FFFFFFF00000001
LINE = re.compile(r"^\d{4}\.\d\d\.\d\d \d\d:\d\d:\d\d\.\d{6} \[uid:\d+,gid:\d+,pid:\d+\] "
                  r"(?P<op>[a-z_]+) (?P<body>.*) - (?P<err>OK|[a-z][^<]*) <\d+\.\d{6}>$")


def stats(path: str) -> dict[str, float]:
    out = {}
    for line in (Path(path) / ".stats").read_text().splitlines():
        name, value = line.rsplit(" ", 1)
        out[name] = float(value)
    return out


def wait_for(cond, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def some_work(root: str, n: int = 5) -> None:
    d = os.path.join(root, "work")
    os.mkdir(d)
    for i in range(n):
        with open(os.path.join(d, f"f{i}"), "wb") as f:
            f.write(os.urandom(100_000))
    for i in range(n):
        with open(os.path.join(d, f"f{i}"), "rb") as f:
            assert len(f.read()) == 100_000
    os.rename(os.path.join(d, "f0"), os.path.join(d, "g0"))
    os.listdir(d)


def test_stats_count_requests_transactions_and_objects(volume, pyjuicefs_mount):
    # no block cache: reads go to the object store
    m = pyjuicefs_mount(volume("sqlite3"), None, "--cache-size", "0")
    before = stats(m.path)
    some_work(m.path)
    for i in range(1, 5):
        os.unlink(os.path.join(m.path, "work", f"f{i}"))
    after = wait_for(lambda: (s := stats(m.path)).get(
        "juicefs_object_request_durations_histogram_seconds_DELETE_total", 0) >= 4 and s, what="deletes")

    def d(name: str) -> float:
        return after.get(name, 0) - before.get(name, 0)

    for op, n in (("create", 5), ("write", 5), ("read", 5), ("mkdir", 1), ("rename", 1), ("unlink", 4),
                  ("open", 5), ("release", 10), ("readdir", 1)):
        assert d(f"juicefs_fuse_ops_total_{op}") >= n, (op, after)
        assert d(f"juicefs_fuse_ops_durations_seconds_{op}") > 0, op
    assert d("juicefs_fuse_ops_durations_histogram_seconds_total") >= 40
    assert d("juicefs_fuse_ops_durations_histogram_seconds_sum") > 0
    assert d("juicefs_fuse_written_size_bytes_sum") == 500_000
    assert d("juicefs_fuse_read_size_bytes_sum") >= 500_000
    for method, n in (("PUT", 5), ("GET", 5), ("DELETE", 4)):
        assert d(f"juicefs_object_request_durations_histogram_seconds_{method}_total") >= n, method
        assert d(f"juicefs_object_request_durations_histogram_seconds_{method}_sum") > 0, method
    assert d("juicefs_object_request_data_bytes_PUT") == 500_000
    assert d("juicefs_object_request_data_bytes_GET") >= 500_000
    assert d("juicefs_transaction_durations_histogram_seconds_total") >= 15
    assert d("juicefs_transaction_durations_histogram_seconds_sum") > 0
    assert d("juicefs_meta_ops_total_Create") == 5 and d("juicefs_meta_ops_total_Rename") == 1
    assert d("juicefs_meta_ops_durations_histogram_seconds_total") >= 20
    assert after["juicefs_uptime"] > before["juicefs_uptime"]
    assert after["juicefs_memory"] > 10 << 20 and after["juicefs_cpu_usage"] > 0
    assert after["juicefs_used_inodes"] >= 2 and after["juicefs_total_space"] > 0
    assert "juicefs_used_buffer_size_bytes" in after and "juicefs_fuse_open_handlers" in after
    # what other code reads keeps its name
    assert "pyjuicefs_staging_blocks" in after and "juicefs_staging_blocks" in after


def test_metrics_endpoint_serves_the_same_metrics(volume, pyjuicefs_mount):
    port = services.free_port()
    m = pyjuicefs_mount(volume("sqlite3"), None, "--metrics", f"127.0.0.1:{port}",
                        "--custom-labels", "team:qa;zone:z1")
    some_work(m.path, 3)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    local = stats(m.path)
    assert f'Prometheus metrics listening on 127.0.0.1:{port}' in m.log()
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    for fam in fams.values():
        for s in fam.samples:
            assert s.labels["vol_name"] == "fusetest" and s.labels["mp"] == m.path, s
            assert s.labels["team"] == "qa" and s.labels["zone"] == "z1", s
            assert s.labels["juicefs_version"].startswith("1.4.2+pyjuicefs")
    ops = {s.labels["method"]: s.value for s in fams["juicefs_fuse_ops"].samples}
    assert ops["create"] == local["juicefs_fuse_ops_total_create"] == 3
    assert ops["mkdir"] == local["juicefs_fuse_ops_total_mkdir"] == 1
    puts = [s for s in fams["juicefs_object_request_durations_histogram_seconds"].samples
            if s.name.endswith("_count") and s.labels["method"] == "PUT"]
    assert puts and puts[0].value >= 3
    txn = [s for s in fams["juicefs_transaction_durations_histogram_seconds"].samples if s.name.endswith("_count")]
    assert txn[0].value > 0
    for name in ("juicefs_uptime", "juicefs_memory", "juicefs_cpu_usage", "juicefs_used_space",
                 "juicefs_used_inodes", "juicefs_blockcache_hits", "juicefs_staging_blocks"):
        assert name in fams, name
    assert re.search(r"^# TYPE juicefs_blockcache_hits counter$", text, re.MULTILINE)


def test_metrics_address_busy_or_wrong(volume, pyjuicefs_mount, tmp_path):
    url = volume("sqlite3")
    mp = tmp_path / "mp"
    mp.mkdir()
    p = cli("mount", url, str(mp), "--metrics", "nonsense", timeout=60)
    assert p.returncode != 0 and "metrics format error" in p.stderr and "Traceback" not in p.stderr
    p = cli("mount", url, str(mp), "--custom-labels", "a=b", timeout=60)
    assert p.returncode != 0 and "invalid label format" in p.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        addr = f"127.0.0.1:{busy.getsockname()[1]}"
        m = pyjuicefs_mount(url, None, "--metrics", addr)  # metrics are never a reason not to mount
        (Path(m.path) / "x").write_text("x")
        assert (Path(m.path) / "x").read_text() == "x"
        assert f"listen on {addr} failed" in m.log()


def test_access_log_streams_requests_while_read(volume, pyjuicefs_mount):
    m = pyjuicefs_mount(volume("sqlite3"))
    fd = os.open(os.path.join(m.path, ".accesslog"), os.O_RDONLY)
    assert os.fstat(fd).st_ino == LOG_INODE
    chunks: list[bytes] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            chunks.append(os.read(fd, 1 << 16))  # at most ~1 s each ("#\n" when idle)

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        root = m.path
        os.mkdir(os.path.join(root, "logdir"))
        with open(os.path.join(root, "logdir", "logfile"), "wb") as f:
            f.write(b"hello")
        os.rename(os.path.join(root, "logdir", "logfile"), os.path.join(root, "logdir", "renamed"))
        os.unlink(os.path.join(root, "logdir", "renamed"))
        os.rmdir(os.path.join(root, "logdir"))
        wait_for(lambda: b"rmdir (1,logdir)" in b"".join(chunks), timeout=15, what="the rmdir line")
    finally:
        stop.set()
        t.join(timeout=10)
        os.close(fd)
    text = b"".join(chunks).decode()
    lines = [ln for ln in text.splitlines() if ln != "#"]
    assert lines, text
    for ln in lines:
        assert LINE.match(ln), ln
    ops = [LINE.match(ln)["op"] for ln in lines]
    for op in ("mkdir", "create", "write", "flush", "release", "rename", "unlink", "rmdir"):
        assert op in ops, (op, text)
    assert any(re.search(r"mkdir \(1,logdir,\?rwxr-xr-x:00755\): \(\d+,\[drwxr-xr-x:0040755,2,", ln) for ln in lines), text
    assert any(re.search(r"create \(\d+,logfile,-rw-r--r--:0100644\): \(\d+,\[-rw-r--r--:0100644,1,.*\]\) "
                         r"\[fh:\d+\] - OK", ln) for ln in lines), text
    assert any(re.search(r"write \(\d+,5,0,\d+\) - OK", ln) for ln in lines), text
    assert any(re.search(r"lookup \(\d+,logfile\): - no such file or directory <", ln) for ln in lines), text
    pid = os.getpid()
    assert any(f"pid:{pid}]" in ln for ln in lines)
    # the reads of the log itself are not logged; the open of it is (as JuiceFS)
    assert not any(f"read ({LOG_INODE}," in ln for ln in lines)
    assert f"open ({LOG_INODE},0x8000)" in lines[0]
    # closed: no reader is left, the next opener starts afresh
    fd = os.open(os.path.join(m.path, ".accesslog"), os.O_RDONLY)
    try:
        first = os.read(fd, 1 << 16).decode()
        assert "rmdir" not in first
    finally:
        os.close(fd)


def test_bench_reads_every_row_from_stats(volume, pyjuicefs_mount):
    m = pyjuicefs_mount(volume("sqlite3"))
    env = {**os.environ, "SKIP_DROP_CACHES": "true"}
    p = subprocess.run([sys.executable, "-m", "pyjuicefs", "bench", m.path, "--big-file-size", "8",
                        "--small-file-size", "64K", "--small-file-count", "10", "--json"],
                       capture_output=True, text=True, timeout=300, env=env, check=False)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    by_name = {x["name"]: x for x in doc["results"]}
    for name in ("fuse", "meta", "put", "get", "delete", "cachewr", "cacherd"):
        assert by_name[name]["value"] is not None and by_name[name]["cost"] is not None, by_name[name]
    assert by_name["meta"]["value"] > 0 and by_name["meta"]["cost"] > 0
    assert by_name["put"]["value"] >= 8 and by_name["cachewr"]["value"] > 0
    usage = doc["mount_usage"]
    assert usage["cpu_percent"] is not None and usage["memory_mib"] > 10 and usage["time_used"] > 0
