"""The metrics registry and its two renderings (JuiceFS's `.stats` and the Prometheus text of
`--metrics`), the hooks (meta transactions and operations over a real memkv engine, object
requests over a real in-memory store), the HTTP endpoint on a free loopback port, and the
`.accesslog` buffer and line formats (compared with lines of a reference JuiceFS 1.4.2 mount)."""

from __future__ import annotations

import re
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
from types import SimpleNamespace

import pytest
import services
from prometheus_client.parser import text_string_to_metric_families

from pyjuicefs import metrics
from pyjuicefs.errors import ObjectNotFound, UserError
from pyjuicefs.format import Format
from pyjuicefs.meta import new_engine
from pyjuicefs.meta.base import Meta
from pyjuicefs.meta.base_common import Context
from pyjuicefs.object.mem import MemStorage
from pyjuicefs.vfs.internal import AccessLog, describe, smode, strerr
from pyjuicefs.vfs.stats import CountingStorage, Stats


def stats_dict(text: bytes) -> dict[str, float]:
    out = {}
    for line in text.decode().splitlines():
        name, value = line.rsplit(" ", 1)
        out[name] = float(value)
    return out


@pytest.fixture
def stats() -> Stats:
    return Stats()  # turns the process's metrics on


# --- number formats --------------------------------------------------------------------------------

@pytest.mark.parametrize("v,f,g", [
    (0.0, "0", "0"), (1.0, "1", "1"), (4099.0, "4099", "4099"),
    (3.6945e-05, "0.000036945", "3.6945e-05"), (0.000104976, "0.000104976", "0.000104976"),
    (1048576.0, "1048576", "1.048576e+06"), (86413312.0, "86413312", "8.6413312e+07"),
    (1.125899906842624e15, "1125899906842624", "1.125899906842624e+15"),
    (9.223372036854776e18, "9223372036854776000", "9.223372036854776e+18"),
    (0.00015000000000000001, "0.00015000000000000001", "0.00015000000000000001"),
    (float("inf"), "+Inf", "+Inf"),
])
def test_go_number_formats(v, f, g):
    # as Go's strconv.FormatFloat(v, 'f', -1, 64) (.stats) and (v, 'g', -1, 64) (Prometheus text)
    assert metrics.go_f(v) == f
    assert metrics.go_g(v) == g


def test_buckets_are_the_go_clients():
    # the first buckets a reference mount exports for these histograms
    assert [metrics.go_g(b) for b in metrics.exponential_buckets(0.00001, 1.8, 29)[:4]] == \
        ["1e-05", "1.8e-05", "3.24e-05", "5.8320000000000004e-05"]
    assert [metrics.go_g(b) for b in metrics.exponential_buckets(0.0001, 1.5, 30)[:3]] == \
        ["0.0001", "0.00015000000000000001", "0.00022500000000000002"]
    assert metrics.linear_buckets(4096, 4096, 32)[-1] == 131072


# --- the registry ---------------------------------------------------------------------------------

def test_stats_text_has_juicefs_names(stats):
    before = stats_dict(stats.prometheus())
    metrics.fuse_op("lookup", 0.002, 2)
    metrics.fuse_op("lookup", 0.001)
    metrics.fuse_op("create", 0.004)
    metrics.txn(0.003)
    metrics.object_request("PUT", 0.01, 4096)
    metrics.object_request("GET", 0.02, 100)
    metrics.object_request("GET", 0.0, 0, failed=True)
    metrics.cache_read(0.0001)
    stats.add_written(4096)
    stats.add_source(lambda: {"juicefs_blockcache_hits": 5, "juicefs_blockcache_write": 2,
                              "pyjuicefs_staging_blocks": 1})
    after = stats_dict(stats.prometheus({"fuse_open_handlers": 3}))

    def d(name: str) -> float:
        return after[name] - before.get(name, 0)

    assert d("juicefs_fuse_ops_total_lookup") == 2 and d("juicefs_fuse_ops_total_create") == 1
    assert d("juicefs_fuse_ops_durations_histogram_seconds_total") == 3
    assert d("juicefs_fuse_ops_durations_histogram_seconds_sum") == pytest.approx(0.007)
    assert d("juicefs_fuse_ops_durations_seconds_lookup") == pytest.approx(0.003)
    assert d("juicefs_fuse_ops_io_errors_ENOENT") == 1
    assert d("juicefs_transaction_durations_histogram_seconds_total") == 1
    assert d("juicefs_object_request_durations_histogram_seconds_PUT_total") == 1
    assert d("juicefs_object_request_durations_histogram_seconds_GET_total") == 1
    assert d("juicefs_object_request_data_bytes_PUT") == 4096
    assert d("juicefs_object_request_errors") == 1
    assert d("juicefs_blockcache_read_hist_seconds_total") == 1
    assert d("juicefs_fuse_written_size_bytes_sum") == 4096
    # figures computed when read, with JuiceFS's names beside pyjuicefs's older ones
    assert after["juicefs_blockcache_hits"] == 5
    assert after["juicefs_blockcache_write"] == after["juicefs_blockcache_writes"] == 2
    assert after["pyjuicefs_staging_blocks"] == 1
    assert after["juicefs_fuse_open_handlers"] == 3
    for name in ("juicefs_cpu_usage", "juicefs_memory", "juicefs_uptime", "juicefs_process_cpu_seconds_total",
                 "juicefs_object_request_uploading", "juicefs_compact_size_histogram_bytes_total"):
        assert name in after, name
    assert after["juicefs_memory"] > 1 << 20


def test_stats_text_is_sorted_and_flat(stats):
    metrics.fuse_op("getattr", 0.0001)
    lines = stats.prometheus().decode().splitlines()
    names = [ln.split()[0] for ln in lines]
    assert all(re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_.:/\-]*", n) for n in names), names
    assert not any("{" in ln or ln.startswith("#") for ln in lines)
    # families sorted by name; a histogram's _total comes before its _sum
    i = names.index("juicefs_fuse_ops_durations_histogram_seconds_total")
    assert names[i + 1] == "juicefs_fuse_ops_durations_histogram_seconds_sum"
    fams = [n for n in names if n.startswith("juicefs_fuse_ops_total_")]
    assert fams == sorted(fams)


def test_prometheus_text_parses_with_go_names_and_labels(stats):
    metrics.fuse_op("mkdir", 0.0005)
    metrics.object_request("PUT", 0.05, 10)
    stats.add_source(lambda: {"juicefs_blockcache_hits": 7})
    const = metrics.common_labels("/mnt/jfs", "myjfs", "1.4.2+pyjuicefs-test", {"team": "storage"})
    text = stats.exposition(const).decode()
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    # the parser strips _total from counter family names: look the exact names up in the text
    assert re.search(r"^# TYPE juicefs_blockcache_hits counter$", text, re.MULTILINE)
    assert re.search(r"^# TYPE juicefs_fuse_ops_total counter$", text, re.MULTILINE)
    assert re.search(r"^# TYPE juicefs_fuse_ops_durations_histogram_seconds histogram$", text, re.MULTILINE)
    assert re.search(r'^juicefs_blockcache_hits\{instance="[^"]*",juicefs_version="1.4.2\+pyjuicefs-test",'
                     r'mp="/mnt/jfs",team="storage",vol_name="myjfs"\} 7$', text, re.MULTILINE)
    assert not re.search(r"_created\b", text)
    for fam in fams.values():
        for s in fam.samples:
            assert s.labels["vol_name"] == "myjfs" and s.labels["mp"] == "/mnt/jfs", s
    hist = fams["juicefs_fuse_ops_durations_histogram_seconds"]
    les = [s.labels["le"] for s in hist.samples if s.name.endswith("_bucket")]
    assert les[0] == "1e-05" and les[-1] == "+Inf" and len(les) == 30
    # buckets, then _sum, then _count, as the Go client writes them
    suffixes = [s.name.rsplit("_", 1)[1] for s in hist.samples]
    assert suffixes[-2:] == ["sum", "count"]
    put = [s for s in fams["juicefs_object_request_durations_histogram_seconds"].samples
           if s.name.endswith("_count") and s.labels.get("method") == "PUT"]
    assert put and put[0].value >= 1


def test_meta_transactions_and_operations_are_timed():
    Stats()
    meta = Meta(new_engine(f"memkv://metrics-{uuid.uuid4().hex}"))
    meta.init(Format(Name="m", UUID=str(uuid.uuid4()), Storage="mem", Bucket="b", TrashDays=0))
    meta.load()
    reg = metrics.registry()
    before = stats_dict(reg.stats_text())
    ctx = Context()
    meta.mkdir(ctx, 1, b"d", 0o755)
    ino, _ = meta.lookup(ctx, 1, b"d")
    meta.getattr(ino)
    after = stats_dict(reg.stats_text())

    def d(name: str) -> float:
        return after.get(name, 0) - before.get(name, 0)

    assert d("juicefs_meta_ops_total_Mkdir") == 1
    assert d("juicefs_meta_ops_total_Lookup") == 1
    assert d("juicefs_meta_ops_total_GetAttr") >= 1
    assert d("juicefs_meta_ops_durations_histogram_seconds_total") >= 3
    assert d("juicefs_meta_ops_duration_seconds_Mkdir") > 0
    assert d("juicefs_transaction_durations_histogram_seconds_total") >= 3
    assert d("juicefs_transaction_durations_histogram_seconds_sum") > 0


def test_object_requests_are_timed_with_bytes(stats):
    store = CountingStorage(MemStorage(f"metrics-{uuid.uuid4().hex}"), stats)
    reg = metrics.registry()
    before = stats_dict(reg.stats_text())
    store.put("a", b"x" * 1000)
    assert store.get("a", 0, 10) == b"x" * 10
    store.head("a")
    store.delete("a")
    with pytest.raises(ObjectNotFound):
        store.get("missing")
    after = stats_dict(reg.stats_text())

    def d(name: str) -> float:
        return after.get(name, 0) - before.get(name, 0)

    assert d("juicefs_object_request_durations_histogram_seconds_PUT_total") == 1
    assert d("juicefs_object_request_durations_histogram_seconds_GET_total") == 1
    assert d("juicefs_object_request_durations_histogram_seconds_HEAD_total") == 1
    assert d("juicefs_object_request_durations_histogram_seconds_DELETE_total") == 1
    assert d("juicefs_object_request_data_bytes_PUT") == 1000
    assert d("juicefs_object_request_data_bytes_GET") == 10
    assert d("juicefs_object_request_errors") == 1
    assert "juicefs_object_request_data_bytes_DELETE" not in after
    assert after["juicefs_object_request_uploading"] == 0
    assert stats.objects["GET"] == 2 and stats.object_errors["GET"] == 1


def test_instrument_methods_wraps_once():
    class Ops:
        def work(self, x):
            return x * 2

    metrics.enable()
    metrics.instrument_methods(Ops, {"work": "Work", "absent": "Absent"})
    metrics.instrument_methods(Ops, {"work": "Work"})
    reg = metrics.registry()
    before = stats_dict(reg.stats_text()).get("juicefs_meta_ops_total_Work", 0)
    assert Ops().work(21) == 42
    assert stats_dict(reg.stats_text())["juicefs_meta_ops_total_Work"] == before + 1


# --- options and the endpoint --------------------------------------------------------------------------

def test_parse_address_and_labels():
    assert metrics.parse_address("127.0.0.1:9567") == ("127.0.0.1", 9567)
    assert metrics.parse_address(":9567") == ("", 9567)
    assert metrics.parse_address("[::1]:80") == ("::1", 80)
    for bad in ("localhost", "1.2.3.4:x", "::1:80", "h:99999"):
        with pytest.raises(UserError, match="metrics format error"):
            metrics.parse_address(bad)
    assert metrics.parse_custom_labels("team:a;zone:b") == {"team": "a", "zone": "b"}
    assert metrics.parse_custom_labels(None) == {}
    with pytest.raises(UserError, match="invalid label format"):
        metrics.parse_custom_labels("team=a")
    with pytest.raises(UserError, match="invalid label format"):
        metrics.parse_custom_labels("a:b:c")


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return r.read()


def test_http_endpoint_serves_and_falls_back(stats):
    metrics.fuse_op("statfs", 0.001)
    render = lambda: stats.exposition({"vol_name": "v", "mp": "/m"})
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    addr = f"127.0.0.1:{busy.getsockname()[1]}"
    servers = []
    try:
        assert metrics.serve(addr, True, render) is None  # given explicitly: no other port
        srv = metrics.serve(addr, False, render)  # the default address: any free port
        assert srv is not None
        servers.append(srv)
        assert srv.address != addr and srv.address.startswith("127.0.0.1:")
        body = fetch(f"http://{srv.address}/metrics").decode()
        assert 'juicefs_fuse_ops_total{method="statfs",mp="/m",vol_name="v"}' in body
        with pytest.raises(urllib.error.HTTPError):
            fetch(f"http://{srv.address}/other")
        port = services.free_port()
        srv2 = metrics.serve(f"127.0.0.1:{port}", True, render)
        servers.append(srv2)
        assert srv2.address == f"127.0.0.1:{port}"
        assert b"juicefs_uptime" in fetch(f"http://127.0.0.1:{port}/metrics")
    finally:
        busy.close()
        for s in servers:
            s.close()


# --- the access log -------------------------------------------------------------------------------------

LINE = re.compile(r"^\d{4}\.\d\d\.\d\d \d\d:\d\d:\d\d\.\d{6} \[uid:\d+,gid:\d+,pid:\d+\] \S+ .* <\d+\.\d{6}>$")


def test_access_log_streams_to_readers_only(monkeypatch):
    monkeypatch.setattr(AccessLog, "READ_WAIT", 0.2)
    al = AccessLog()
    al.log(0, 0, 1, "lookup (1,a): - no such file or directory", 0.001)  # nobody reads: dropped
    assert not al.active
    al.open(7)
    assert al.active and al.is_reader(7)
    assert al.read(7, 4096) == b"#\n"  # nothing within the wait
    al.log(1000, 100, 42, "mkdir (1,d,?rwxr-xr-x:00755): (2,[...]) - OK", 0.0001234)
    al.log(0, 0, 0, "release (2,3) - OK", 0.5)
    out = al.read(7, 4096).decode()
    lines = out.splitlines()
    assert len(lines) == 2 and all(LINE.match(ln) for ln in lines), out
    assert "[uid:1000,gid:100,pid:42] mkdir (1,d,?rwxr-xr-x:00755): (2,[...]) - OK <0.000123>" in lines[0]
    # a read smaller than a line gets the rest next time
    al.log(0, 0, 1, "x" * 100, 0)
    first = al.read(7, 40)
    assert len(first) == 40
    assert (first + al.read(7, 4096)).decode().endswith("x" * 100 + " <0.000000>\n")
    al.close(7)
    assert not al.active and al.read(7, 10) == b""


def test_access_log_buffer_is_bounded(monkeypatch):
    monkeypatch.setattr(AccessLog, "BUFFER_LINES", 5)
    monkeypatch.setattr(AccessLog, "READ_WAIT", 0.05)
    al = AccessLog()
    al.open(1)
    for i in range(20):
        al.log(0, 0, 0, f"op{i}", 0)
    lines = al.read(1, 1 << 20).decode().splitlines()
    assert [ln.split()[-2] for ln in lines] == ["op0", "op1", "op2", "op3", "op4"]  # newer ones dropped


def test_access_log_read_waits_for_lines(monkeypatch):
    monkeypatch.setattr(AccessLog, "READ_WAIT", 2.0)
    al = AccessLog()
    al.open(3)
    threading.Timer(0.2, lambda: al.log(0, 0, 9, "getattr (1): - OK", 0.001)).start()
    t0 = time.monotonic()
    out = al.read(3, 64)  # fills 64 bytes from the one line, before the wait is over
    assert b"getattr (1)" in out or len(out) == 64
    assert time.monotonic() - t0 < 1.9


def entry(ino, mode, nlink, size, t=1795611133, uid=0, gid=0):
    ns = t * 10**9
    return SimpleNamespace(st_ino=ino, st_mode=mode, st_nlink=nlink, st_uid=uid, st_gid=gid, st_atime_ns=ns,
                           st_mtime_ns=ns, st_ctime_ns=ns, st_size=size)


def test_describe_matches_reference_lines():
    # the bodies of lines a JuiceFS 1.4.2 mount logged for the same requests
    fhs = {10: 3, 11: 3, 14: 3, 16: 6}.get
    ino = lambda fh: fhs(fh, 0)
    e3 = entry(3, 0o100644, 1, 0)
    assert describe("lookup", (1, b"f1", None), None, 2, ino) == "lookup (1,f1): - no such file or directory"
    assert describe("create", (1, b"f1", 0o100644, 0, None), (SimpleNamespace(fh=10), e3), 0, ino) == \
        "create (1,f1,-rw-r--r--:0100644): (3,[-rw-r--r--:0100644,1,0,0,1795611133,1795611133,1795611133,0])" \
        " [fh:10] - OK"
    assert describe("write", (10, 0, b"hello\n"), 6, 0, ino) == "write (3,6,0,10) - OK"
    assert describe("read", (11, 0, 4096), b"hello\n", 0, ino) == "read (3,4096,0,11): (6) - OK"
    assert describe("release", (10,), None, 0, ino) == "release (3,10) - OK"
    assert describe("open", (3, 0x8000, None), SimpleNamespace(fh=11), 0, ino) == "open (3,0x8000) [fh:11] - OK"
    assert describe("mkdir", (1, b"dd", 0o755, None), entry(4, 0o40755, 2, 4096), 0, ino) == \
        "mkdir (1,dd,?rwxr-xr-x:00755): (4,[drwxr-xr-x:0040755,2,0,0,1795611133,1795611133,1795611133,4096]) - OK"
    assert describe("symlink", (1, b"sl", b"f1", None), entry(5, 0o120777, 1, 2), 0, ino) == \
        "symlink (1,sl,f1): (5,[lrwxrwxrwx:0120777,1,0,0,1795611133,1795611133,1795611133,2]) - OK"
    assert describe("readlink", (5, None), b"f1", 0, ino) == "readlink (5): (f1) - OK"
    assert describe("rename", (1, b"f1", 1, b"f2", 1, None), None, 0, ino) == "rename (1,f1,1,f2,1) - OK"
    fields = SimpleNamespace(update_mode=True, update_uid=False, update_gid=False, update_atime=False,
                             update_mtime=False, update_size=False)
    assert describe("setattr", (3, entry(3, 0o100600, 1, 6), fields, None, None), entry(3, 0o100600, 1, 6), 0,
                    ino) == ("setattr (3[0],0x1,[mode=-rw-------:00600]): "
                             "(3,[-rw-------:0100600,1,0,0,1795611133,1795611133,1795611133,6]) - OK")
    size = SimpleNamespace(update_mode=False, update_uid=False, update_gid=False, update_atime=False,
                           update_mtime=False, update_size=True)
    assert describe("setattr", (3, entry(3, 0o100600, 1, 10), size, 14, None), entry(3, 0o100600, 1, 10), 0,
                    ino).startswith("setattr (3[14],0x8,[size=10]): (3,[")
    assert describe("unlink", (1, b"sl", None), None, 0, ino) == "unlink (1,sl) - OK"
    assert describe("rmdir", (1, b"dd", None), None, 0, ino) == "rmdir (1,dd) - OK"
    assert describe("fsync", (16, False), None, 0, ino) == "fsync (6,0) - OK"
    assert describe("flock", (16, 0x2E3EFFC021595F18, 2, None), None, 0, ino) == \
        "flock (6,16,2E3EFFC021595F18,LOCKEX,true) - OK"
    lock = SimpleNamespace(l_type=1, l_start=0, l_len=0, l_pid=26630)
    assert describe("setlk", (16, 0xF50733239119AF75, lock, True, None), None, 0, ino) == \
        "setlk (6,16,F50733239119AF75,0,9223372036854775807,W,true,26630) - OK"
    st = SimpleNamespace(f_frsize=4096, f_blocks=274877906944, f_bavail=274877906939, f_files=10485760,
                         f_ffree=10485755)
    assert describe("statfs", (None,), st, 0, ino) == "statfs (1): (20480,1125899906822144,5,10485755) - OK"
    assert describe("opendir", (1, None), 15, 0, ino) == "opendir (1) [fh:15] - OK"
    assert describe("getxattr", (3, b"user.a", None), None, 61, ino) == "getxattr (3,user.a,0): (0) - no data available"


def test_smode_and_strerr():
    assert smode(0o100644) == "-rw-r--r--" and smode(0o40777) == "drwxrwxrwx" and smode(0o755) == "?rwxr-xr-x"
    assert smode(0o104755) == "-rwsr-xr-x" and smode(0o41777) == "drwxrwxrwt" and smode(0o102644) == "-rw-r-Sr--"
    assert strerr(0) == "OK" and strerr(2) == "no such file or directory" and strerr(39) == "directory not empty"
