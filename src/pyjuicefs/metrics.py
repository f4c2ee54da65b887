"""Process-wide metrics with JuiceFS 1.4's names, rendered as JuiceFS renders them: the flattened
`.stats` text (pkg/vfs/internal.go collectMetrics) and the Prometheus text of `--metrics`
(cmd/mount.go exposeMetrics). See docs/dev/metrics.md for the list and where each is measured.

The values live in prometheus-client objects (thread-safe, no lock of ours on the hot path),
imported on the first enable(): a CLI command that never mounts pays nothing. The hooks below
(fuse_op, txn, object_request, ...) are cheap no-ops until then.

prometheus-client's own encoder appends `_total` to every counter, which would rename JuiceFS's
`juicefs_blockcache_hits` & co and break dashboards; so the text is written here from the
registry's samples, with the Go client's names, label order and number formatting.
"""

from __future__ import annotations

import errno as _errno
import functools
import logging
import math
import os
import resource
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from .errors import UserError

log = logging.getLogger(__name__)

START = time.monotonic()  # juicefs_uptime counts from here (about the process start for a mount)
DEFAULT_ADDR = "127.0.0.1:9567"
# Labels the mount adds to every exported sample; `.stats` leaves them (and storage_class) out.
RESERVED_LABELS = ("mp", "vol_name", "instance")
_STATS_SKIPPED_LABELS = {"mp", "vol_name", "instance", "juicefs_version", "storage_class"}


def exponential_buckets(start: float, factor: float, count: int) -> list[float]:
    """Go's prometheus.ExponentialBuckets (by repeated multiplication: the same floats)."""
    out = []
    for _ in range(count):
        out.append(start)
        start *= factor
    return out


def linear_buckets(start: float, width: float, count: int) -> list[float]:
    out = []
    for _ in range(count):
        out.append(start)
        start += width
    return out


@dataclass(frozen=True)
class Spec:
    name: str  # the Go name, as exported
    kind: str  # counter | gauge | histogram
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()


_FUSE_HIST = tuple(exponential_buckets(0.00001, 1.8, 29))
_META_HIST = tuple(exponential_buckets(0.0001, 1.5, 30))
_OBJ_HIST = tuple(exponential_buckets(0.01, 1.5, 25))
_CACHE_HIST = tuple(exponential_buckets(0.00001, 2, 20))
_SIZE_HIST = tuple(linear_buckets(4096, 4096, 32))

# The metrics measured in this process (label-less histograms/counters exist from the start, as in Go).
SPECS = (
    Spec("juicefs_fuse_ops_durations_histogram_seconds", "histogram", "Operations latency distributions.",
         buckets=_FUSE_HIST),
    Spec("juicefs_fuse_ops_total", "counter", "Total number of operations.", ("method",)),
    Spec("juicefs_fuse_ops_durations_seconds", "counter", "Operations latency in seconds.", ("method",)),
    Spec("juicefs_fuse_ops_io_errors", "counter", "Number of IO errors.", ("errno",)),
    Spec("juicefs_fuse_read_size_bytes", "histogram", "size of read distributions.", buckets=_SIZE_HIST),
    Spec("juicefs_fuse_written_size_bytes", "histogram", "size of write distributions.", buckets=_SIZE_HIST),
    Spec("juicefs_compact_size_histogram_bytes", "histogram", "Distribution of size of compacted data in bytes.",
         buckets=tuple(exponential_buckets(1024, 2, 16))),
    Spec("juicefs_transaction_durations_histogram_seconds", "histogram", "Transactions latency distributions.",
         buckets=_META_HIST),
    Spec("juicefs_transaction_restart", "counter", "The number of times a transaction is restarted.", ("method",)),
    Spec("juicefs_meta_ops_durations_histogram_seconds", "histogram", "Operation latency distributions.",
         buckets=_META_HIST),
    Spec("juicefs_meta_ops_total", "counter", "Meta operation count", ("method",)),
    Spec("juicefs_meta_ops_duration_seconds", "counter", "Meta operation duration in seconds.", ("method",)),
    Spec("juicefs_object_request_durations_histogram_seconds", "histogram", "Object requests latency distributions.",
         ("method",), _OBJ_HIST),
    Spec("juicefs_object_request_data_bytes", "counter", "Object requests size in bytes.", ("method",)),
    Spec("juicefs_object_request_errors", "counter", "failed requests to object store"),
    Spec("juicefs_object_request_uploading", "gauge", "number of uploading requests"),
    Spec("juicefs_blockcache_read_hist_seconds", "histogram", "read cached block latency distribution",
         buckets=_CACHE_HIST),
    Spec("juicefs_blockcache_write_hist_seconds", "histogram", "write cached block latency distribution",
         buckets=_CACHE_HIST),
)

# Samples computed when read (Stats sources and gauges): their type and help, by full name.
KNOWN: dict[str, tuple[str, str]] = {
    "juicefs_cpu_usage": ("gauge", "Accumulated CPU usage in seconds."),
    "juicefs_memory": ("gauge", "Used memory in bytes."),
    "juicefs_uptime": ("gauge", "Total running time in seconds."),
    "juicefs_used_space": ("gauge", "Total used space in bytes."),
    "juicefs_used_inodes": ("gauge", "Total used number of inodes."),
    "juicefs_total_space": ("gauge", "Total space in bytes."),
    "juicefs_total_inodes": ("gauge", "Total number of inodes."),
    "juicefs_fuse_open_handlers": ("gauge", "number of open files and directories."),
    "juicefs_used_buffer_size_bytes": ("gauge", "size of currently used buffer."),
    "juicefs_used_read_buffer_size_bytes": ("gauge", "size of currently used buffer for read"),
    "juicefs_store_cache_size_bytes": ("gauge", "size of store cache."),
    "juicefs_blockcache_blocks": ("gauge", "number of cached blocks"),
    "juicefs_blockcache_bytes": ("gauge", "number of cached bytes"),
    "juicefs_blockcache_hits": ("counter", "read from cached block"),
    "juicefs_blockcache_miss": ("counter", "missed read from cached block"),
    "juicefs_blockcache_hit_bytes": ("counter", "read bytes from cached block"),
    "juicefs_blockcache_miss_bytes": ("counter", "missed bytes from cached block"),
    "juicefs_blockcache_writes": ("counter", "written cached block"),
    "juicefs_blockcache_write": ("counter", "written cached block (pyjuicefs's older name)"),
    "juicefs_blockcache_write_bytes": ("counter", "write bytes of cached block"),
    "juicefs_blockcache_drops": ("counter", "dropped block"),
    "juicefs_blockcache_evicts": ("counter", "evicted cache blocks"),
    "juicefs_blockcache_evict": ("counter", "evicted cache blocks (pyjuicefs's older name)"),
    "juicefs_blockcache_corrupt": ("counter", "cached blocks dropped for a bad checksum"),
    "juicefs_staging_blocks": ("gauge", "Number of blocks in the staging path."),
    "pyjuicefs_staging_blocks": ("gauge", "Number of blocks in the staging path."),
    "juicefs_staging_block_bytes": ("gauge", "Total bytes of blocks in the staging path."),
}
# pyjuicefs's chunk store names -> JuiceFS's, emitted as well.
ALIASES = {"juicefs_blockcache_write": "juicefs_blockcache_writes", "juicefs_blockcache_evict": "juicefs_blockcache_evicts"}

# Meta methods timed as JuiceFS's baseMeta times them (python name -> JuiceFS method label).
META_OPS = {
    "access": "Access", "getattr": "GetAttr", "setattr": "SetAttr", "getxattr": "GetXattr",
    "listxattr": "ListXattr", "setxattr": "SetXattr", "removexattr": "RemoveXattr", "open": "Open",
    "close": "Close", "read": "Read", "write": "Write", "truncate": "Truncate", "fallocate": "Fallocate",
    "copy_file_range": "CopyFileRange", "flock": "Flock", "getlk": "Getlk", "setlk": "Setlk",
    "lookup": "Lookup", "mknod": "Mknod", "mkdir": "Mkdir", "symlink": "Symlink", "create": "Create",
    "readlink": "ReadLink", "unlink": "Unlink", "rmdir": "Rmdir", "rename": "Rename", "link": "Link",
    "readdir": "Readdir", "statfs": "StatFS", "new_slice": "NewSlice",
}


# --- the registry -----------------------------------------------------------------------------------

@dataclass
class Family:
    """One metric family as exported: samples are (suffix, labels, value)."""

    name: str
    kind: str
    help: str
    samples: list[tuple[str, dict[str, str], float]] = field(default_factory=list)


class Registry:
    """The prometheus-client objects of SPECS plus the process collector, and the two renderers."""

    def __init__(self) -> None:
        import prometheus_client as pc

        self.pc = pc
        self.reg = pc.CollectorRegistry(auto_describe=False)
        self.m: dict[str, Any] = {}
        for s in SPECS:
            if s.kind == "counter":
                self.m[s.name] = pc.Counter(s.name, s.help, s.labels, registry=self.reg)
            elif s.kind == "gauge":
                self.m[s.name] = pc.Gauge(s.name, s.help, s.labels, registry=self.reg)
            else:
                self.m[s.name] = pc.Histogram(s.name, s.help, s.labels, registry=self.reg, buckets=s.buckets)
        # counters whose Go name does not end in _total: prometheus-client strips nothing from them
        self._plain_counters = {s.name for s in SPECS if s.kind == "counter" and not s.name.endswith("_total")}
        try:
            pc.ProcessCollector(namespace="juicefs", registry=self.reg)  # juicefs_process_* (Linux /proc)
        except Exception as e:  # noqa: BLE001 - optional
            log.debug("process collector: %s", e)

    def families(self, extra: dict[str, float] | None = None) -> list[Family]:
        """Every family, sorted by name: the registry's, the process gauges, and `extra` samples
        (full name -> value, typed by KNOWN; unknown names are gauges)."""
        fams: dict[str, Family] = {}
        for mf in self.reg.collect():
            kind = mf.type if mf.type in ("counter", "gauge", "histogram") else "gauge"
            name = mf.name
            if kind == "counter" and name not in self._plain_counters:
                name += "_total"
            fam = Family(name, kind, mf.documentation)
            for s in mf.samples:
                if s.name.endswith("_created"):
                    continue
                if kind == "counter":
                    fam.samples.append(("", dict(s.labels), s.value))
                elif kind == "histogram":
                    fam.samples.append((s.name[len(mf.name):], dict(s.labels), s.value))
                else:
                    fam.samples.append(("", dict(s.labels), s.value))
            fams[name] = fam
        samples = dict(process_samples())
        samples.update(extra or {})
        for alias_of, alias in ALIASES.items():
            if alias_of in samples and alias not in samples:
                samples[alias] = samples[alias_of]
        for name, value in samples.items():
            kind, help_ = KNOWN.get(name, ("gauge", ""))
            fams[name] = Family(name, kind, help_, [("", {}, float(value))])
        return [fams[k] for k in sorted(fams)]

    def stats_text(self, extra: dict[str, float] | None = None) -> bytes:
        """`.stats`: one `name[_labelvalue...] value` line per sample; a histogram as
        `<name>_total <count>` and `<name>_sum <sum>` (JuiceFS collectMetrics)."""
        lines: list[str] = []
        for fam in self.families(extra):
            if fam.kind == "histogram":
                groups: dict[tuple, dict[str, float]] = {}
                for suffix, labels, value in fam.samples:
                    if suffix in ("_count", "_sum"):
                        groups.setdefault(_label_key(labels), {})[suffix] = value
                for key in sorted(groups):
                    base = _flat_name(fam.name, key)
                    g = groups[key]
                    lines.append(f"{base}_total {int(g.get('_count', 0))}")
                    lines.append(f"{base}_sum {go_f(g.get('_sum', 0.0))}")
            else:
                for _s, labels, value in sorted(fam.samples, key=lambda s: _label_key(s[1])):
                    lines.append(f"{_flat_name(fam.name, _label_key(labels))} {go_f(value)}")
        return ("\n".join(lines) + "\n").encode()

    def prometheus_text(self, const_labels: dict[str, str], extra: dict[str, float] | None = None) -> bytes:
        """The Prometheus text exposition (0.0.4) as the Go client writes it."""
        out: list[str] = []
        for fam in self.families(extra):
            if not fam.samples:
                continue
            out.append(f"# HELP {fam.name} {_escape_help(fam.help)}\n")
            out.append(f"# TYPE {fam.name} {fam.kind}\n")
            samples = fam.samples
            if fam.kind == "histogram":
                samples = _histogram_order(samples)
            for suffix, labels, value in samples:
                merged = {**const_labels, **{k: v for k, v in labels.items() if k != "le"}}
                pairs = sorted(merged.items())
                if "le" in labels:
                    pairs.append(("le", _le(labels["le"])))
                text = ",".join(f'{k}="{_escape_label(v)}"' for k, v in pairs)
                out.append(f"{fam.name}{suffix}{{{text}}} {go_g(value)}\n" if text
                           else f"{fam.name}{suffix} {go_g(value)}\n")
        return "".join(out).encode()


def _label_key(labels: dict[str, str]) -> tuple[str, ...]:
    return tuple(v for k, v in sorted(labels.items()) if k != "le" and k not in _STATS_SKIPPED_LABELS)


def _flat_name(name: str, key: tuple[str, ...]) -> str:
    return "_".join((name, *key)) if key else name


def _histogram_order(samples: list[tuple[str, dict[str, str], float]]) -> list[tuple[str, dict[str, str], float]]:
    """Per label set: the buckets (ascending), then _sum, then _count (the Go client's order)."""
    by_key: dict[tuple, list] = {}
    for s in samples:
        by_key.setdefault(tuple(sorted((k, v) for k, v in s[1].items() if k != "le")), []).append(s)
    rank = {"_bucket": 0, "_sum": 1, "_count": 2}
    out = []
    for key in sorted(by_key):
        out += sorted(by_key[key], key=lambda s: (rank.get(s[0], 3), float(s[1].get("le", "0"))))
    return out


def _le(v: str) -> str:
    return go_g(float(v))


def _escape_help(s: str) -> str:
    return s.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_label(s: str) -> str:
    return s.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def go_f(v: float) -> str:
    """strconv.FormatFloat(v, 'f', -1, 64): shortest digits, never an exponent."""
    v = float(v)
    if math.isnan(v):
        return "NaN"
    if v in (float("inf"), float("-inf")):
        return "+Inf" if v > 0 else "-Inf"
    if v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return format(Decimal(repr(v)).normalize(), "f")


def go_g(v: float) -> str:
    """strconv.FormatFloat(v, 'g', -1, 64), as the Go client writes sample values: shortest digits,
    an exponent (e+06 style) when it is < -4 or >= 6."""
    v = float(v)
    if math.isnan(v):
        return "NaN"
    if v in (float("inf"), float("-inf")):
        return "+Inf" if v > 0 else "-Inf"
    if v == 0:
        return "0"
    d = Decimal(repr(v)).normalize()
    exp = d.adjusted()
    if exp < -4 or exp >= 6:
        sign, digits, _ = d.as_tuple()
        mant = "".join(map(str, digits))
        mant = mant[0] + ("." + mant[1:] if len(mant) > 1 else "")
        return f"{'-' if sign else ''}{mant}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    return format(d, "f")


# --- process samples ------------------------------------------------------------------------------

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int:
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def process_samples() -> Iterable[tuple[str, float]]:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    yield "juicefs_cpu_usage", round(ru.ru_utime + ru.ru_stime, 6)
    yield "juicefs_memory", float(rss_bytes())
    yield "juicefs_uptime", time.monotonic() - START


# --- enabling, and the hot-path hooks ---------------------------------------------------------------

_lock = threading.Lock()
_registry: Registry | None = None
_m: _Handles | None = None  # set once enabled; hooks do nothing while it is None
_import_failed = False


class _Handles:
    """Direct references to the metric objects (and per-label children) the hooks use."""

    def __init__(self, r: Registry) -> None:
        m = r.m
        self.fuse_hist = m["juicefs_fuse_ops_durations_histogram_seconds"]
        self.fuse_total = m["juicefs_fuse_ops_total"]
        self.fuse_secs = m["juicefs_fuse_ops_durations_seconds"]
        self.fuse_errors = m["juicefs_fuse_ops_io_errors"]
        self.read_size = m["juicefs_fuse_read_size_bytes"]
        self.written_size = m["juicefs_fuse_written_size_bytes"]
        self.txn_hist = m["juicefs_transaction_durations_histogram_seconds"]
        self.txn_restart = m["juicefs_transaction_restart"]
        self.meta_hist = m["juicefs_meta_ops_durations_histogram_seconds"]
        self.meta_total = m["juicefs_meta_ops_total"]
        self.meta_secs = m["juicefs_meta_ops_duration_seconds"]
        self.obj_hist = m["juicefs_object_request_durations_histogram_seconds"]
        self.obj_bytes = m["juicefs_object_request_data_bytes"]
        self.obj_errors = m["juicefs_object_request_errors"]
        self.uploading = m["juicefs_object_request_uploading"]
        self.cache_read = m["juicefs_blockcache_read_hist_seconds"]
        self.cache_write = m["juicefs_blockcache_write_hist_seconds"]
        self.fuse_children: dict[str, tuple[Any, Any]] = {}
        self.meta_children: dict[str, tuple[Any, Any]] = {}
        self.obj_children: dict[str, Any] = {}

    @staticmethod
    def child(cache: dict[str, tuple[Any, Any]], a: Any, b: Any, key: str) -> tuple[Any, Any]:
        c = cache.get(key)
        if c is None:  # a race only builds the same children twice (labels() is idempotent)
            c = cache[key] = (a.labels(key), b.labels(key))
        return c


def enable() -> Registry | None:
    """Build the registry (first call) and turn the hooks on. None if prometheus-client is missing
    (then `.stats` shows only the figures computed when read)."""
    global _registry, _m, _import_failed
    if _registry is not None or _import_failed:
        return _registry
    with _lock:
        if _registry is None and not _import_failed:
            try:
                r = Registry()
            except ImportError as e:
                _import_failed = True
                log.warning("metrics are disabled: %s (pip install prometheus-client)", e)
                return None
            _m = _Handles(r)
            _registry = r
    return _registry


def registry() -> Registry | None:
    return _registry


def fuse_op(method: str, seconds: float, err: int = 0) -> None:
    m = _m
    if m is None:
        return
    m.fuse_hist.observe(seconds)
    total, secs = m.child(m.fuse_children, m.fuse_total, m.fuse_secs, method)
    total.inc()
    secs.inc(seconds)
    if err:
        m.fuse_errors.labels(_errno.errorcode.get(err, str(err))).inc()


def fuse_read(n: int) -> None:
    if _m is not None:
        _m.read_size.observe(n)


def fuse_written(n: int) -> None:
    if _m is not None:
        _m.written_size.observe(n)


def txn(seconds: float) -> None:
    if _m is not None:
        _m.txn_hist.observe(seconds)


def txn_restart(method: str) -> None:
    if _m is not None:
        _m.txn_restart.labels(method).inc()


def meta_op(method: str, seconds: float) -> None:
    m = _m
    if m is None:
        return
    m.meta_hist.observe(seconds)
    total, secs = m.child(m.meta_children, m.meta_total, m.meta_secs, method)
    total.inc()
    secs.inc(seconds)


def object_request(method: str, seconds: float, nbytes: int = 0, failed: bool = False) -> None:
    m = _m
    if m is None:
        return
    if failed:
        m.obj_errors.inc()
        return
    hist = m.obj_children.get(method)
    if hist is None:
        hist = m.obj_children[method] = m.obj_hist.labels(method)
    hist.observe(seconds)
    if nbytes:  # only GET/PUT move data (the Go client has no DELETE/HEAD/LIST bytes either)
        m.obj_bytes.labels(method).inc(nbytes)


def uploading(delta: int) -> None:
    if _m is not None:
        _m.uploading.inc(delta)


def cache_read(seconds: float) -> None:
    if _m is not None:
        _m.cache_read.observe(seconds)


def cache_write(seconds: float) -> None:
    if _m is not None:
        _m.cache_write.observe(seconds)


def instrument_methods(cls: type, names: dict[str, str]) -> None:
    """Time `cls`'s methods (python name -> JuiceFS label) as meta operations. Applied once, at
    import; a method missing from `cls` is skipped."""
    perf = time.perf_counter
    for pyname, label in names.items():
        fn = getattr(cls, pyname, None)
        if fn is None or getattr(fn, "_metered", False):
            continue

        def make(fn: Callable, label: str) -> Callable:
            @functools.wraps(fn)
            def timed(*args: Any, **kwargs: Any) -> Any:
                t0 = perf()
                try:
                    return fn(*args, **kwargs)
                finally:
                    if _m is not None:
                        meta_op(label, perf() - t0)

            timed._metered = True  # type: ignore[attr-defined]
            return timed

        setattr(cls, pyname, make(fn, label))


# --- mount options and the HTTP endpoint -------------------------------------------------------------

def parse_address(value: str) -> tuple[str, int]:
    """(host, port) of a `--metrics` value (Go net.SplitHostPort: "host:port", "[::1]:port", ":port")."""
    v = value.strip()
    host, sep, port = v.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise UserError(f"metrics format error {value!r}: expected HOST:PORT, e.g. {DEFAULT_ADDR}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise UserError(f"metrics format error {value!r}: an IPv6 address needs brackets, e.g. [::1]:9567")
    return host, int(port)


def parse_custom_labels(value: str | None) -> dict[str, str]:
    """`--custom-labels "k:v;k2:v2"` as JuiceFS reads it (each item exactly one ':')."""
    out: dict[str, str] = {}
    if not value:
        return out
    for kv in value.split(";"):
        parts = kv.split(":")
        if len(parts) != 2:
            raise UserError(f"invalid label format: {kv!r} (expected key:value;key2:value2)")
        k, v = parts
        if not _valid_label_name(k):
            raise UserError(f"invalid label name {k!r} in --custom-labels")
        if k in RESERVED_LABELS:
            log.warning("overriding reserved label: %r", k)
        out[k] = v
    return out


def _valid_label_name(k: str) -> bool:
    return bool(k) and (k[0].isalpha() or k[0] == "_") and all(c.isalnum() or c == "_" for c in k) and k.isascii()


def common_labels(mountpoint: str, volume: str, version: str, custom: dict[str, str]) -> dict[str, str]:
    labels = {"mp": mountpoint, "vol_name": volume, "juicefs_version": version}
    try:
        labels["instance"] = socket.gethostname()
    except OSError as e:
        log.warning("cannot get hostname: %s", e)
    labels.update(custom)
    return labels


class MetricsServer:
    """`GET /metrics` (Prometheus text) served by a daemon thread."""

    def __init__(self, httpd: Any, thread: threading.Thread) -> None:
        self.httpd = httpd
        self.thread = thread
        host, port = httpd.server_address[:2]
        self.address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def serve(addr: str, explicit: bool, render: Callable[[], bytes]) -> MetricsServer | None:
    """Listen on `addr`; when it is busy and the address was not given explicitly, on a free port
    of the same host (JuiceFS does so for the default 127.0.0.1:9567). None (logged) on failure:
    metrics are never a reason not to mount."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    host, port = parse_address(addr)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # http.server's name
            if self.path.split("?")[0] not in ("/metrics", "/metrics/"):
                self.send_error(404)
                return
            try:
                body = render()
            except Exception as e:  # noqa: BLE001 - a scrape must not kill the thread
                log.warning("render metrics: %s", e)
                self.send_error(500)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("metrics: " + format, *args)

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        allow_reuse_address = True
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    try:
        httpd = Server((host, port), Handler)
    except OSError as e:
        if explicit:
            log.error("listen on %s failed: %s", addr, e)
            return None
        try:
            httpd = Server((host, 0), Handler)
        except OSError as e2:
            log.error("listen failed: %s", e2)
            return None
    t = threading.Thread(target=httpd.serve_forever, name="jfs-metrics", daemon=True)
    t.start()
    srv = MetricsServer(httpd, t)
    log.info("Prometheus metrics listening on %s", srv.address)
    return srv
