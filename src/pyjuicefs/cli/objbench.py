"""`pyjuicefs objbench BUCKET`: JuiceFS 1.4's object storage benchmark (cmd/objbench.go).

Everything happens under a temporary prefix `__pyjuicefs_benchmark_<ns>__/` in the bucket, removed
at the end. First the functional checks (bench_objcheck.py) unless --skip-functional-tests, then
the performance rows: the big object uploaded and downloaded as --block-size objects, small objects
put and got, then list, head, delete (and chmod/chown/mtime on a `file` bucket), each phase with
--threads requests in flight.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from rich.text import Text

from ..errors import UserError
from ..object import STORAGE_KINDS, new_store, resolve_credentials
from ..object.base import ObjectStorage
from ..object.prefix import WithPrefix
from . import bench_common as bc
from . import bench_objcheck as chk
from . import options as opt

log = logging.getLogger("pyjuicefs.cli")

HELP = """\
Run basic benchmarks on the target object storage to test if it works as expected.

Examples:
  # Run benchmarks on S3
  ACCESS_KEY=myAccessKey SECRET_KEY=mySecretKey pyjuicefs objbench --storage s3 https://mybucket.s3.us-east-2.amazonaws.com -p 6
  # Run benchmarks on a local directory, results as JSON
  pyjuicefs objbench /var/jfs --json
"""

# JuiceFS's normal ranges: (value min, value max, cost min, cost max).
RANGES: dict[str, tuple[float, float, float, float]] = {
    "put": (100, 150, 50, 150),
    "get": (100, 150, 50, 150),
    "smallput": (10, 30, 30, 100),
    "smallget": (10, 30, 30, 100),
    "list": (1000, 10000, 100, 200),
    "head": (10, 30, 30, 100),
    "delete": (10, 30, 30, 100),
    "chmod": (10, 30, 30, 100),
    "chown": (10, 30, 30, 100),
    "chtimes": (10, 30, 30, 100),
}
# Run order, then print order (JuiceFS runs deletes last but prints them after head).
RUN_ORDER = ("smallput", "smallget", "put", "get", "list", "head", "chtimes", "chmod", "chown", "delete")
PRINT_ORDER = ("put", "get", "smallput", "smallget", "list", "head", "delete", "chmod", "chown", "chtimes")
TITLES = {"smallput": "put small objects", "smallget": "get small objects", "put": "upload objects",
          "get": "download objects", "list": "list objects", "head": "head objects", "chtimes": "update mtime",
          "chmod": "change permissions", "chown": "change owner/group", "delete": "delete objects"}
FS_APIS = ("chtimes", "chmod", "chown")
CHECK_BYTES = 10  # downloads are checked on their length and first bytes, as JuiceFS does


def register(sub: argparse._SubParsersAction) -> None:
    from .main import add_global_flags

    p = sub.add_parser("objbench", help="Run benchmarks on an object storage", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bucket", metavar="BUCKET", nargs="?", help="the bucket (a directory for --storage file)")
    p.add_argument("--storage", default="file", metavar="TYPE",
                   help=f'object storage type: {", ".join(STORAGE_KINDS)} (default: "file")')
    p.add_argument("--access-key", metavar="KEY", help="access key for object storage (env ACCESS_KEY)")
    p.add_argument("--secret-key", metavar="KEY", help="secret key for object storage (env SECRET_KEY)")
    p.add_argument("--session-token", metavar="TOKEN", help="session token for object storage (env SESSION_TOKEN)")
    p.add_argument("--shards", default="0", metavar="N", help="store the blocks into N buckets by hash of key (default: 0)")
    p.add_argument("--block-size", default="4M", metavar="SIZE", help='size of each IO block in KiB (default: "4M")')
    p.add_argument("--big-object-size", default="1G", metavar="SIZE",
                   help='size of each big object in MiB (default: "1G")')
    p.add_argument("--small-object-size", default="128K", metavar="SIZE",
                   help='size of each small object in KiB (default: "128K")')
    p.add_argument("--small-objects", default="100", metavar="N", help="number of small objects (default: 100)")
    p.add_argument("--skip-functional-tests", action="store_true", help="skip functional tests")
    p.add_argument("-p", "--threads", default="4", metavar="N", help="number of concurrent threads (default: 4)")
    p.add_argument("--storage-class", "--sc", metavar="CLASS",
                   help="storage class for object storage (not supported by pyjuicefs's stores: ignored)")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object (no tables)")
    add_global_flags(p)
    p.set_defaults(func=run)


@dataclass
class Params:
    bsize: int
    fsize: int
    small_size: int
    scount: int
    bcount: int
    threads: int

    @property
    def list_count(self) -> int:
        return min(self.scount + self.bcount, 1000)


# --- the store -----------------------------------------------------------------------------------


def open_store(args: argparse.Namespace) -> ObjectStorage:
    kind = args.storage.lower()
    if kind not in STORAGE_KINDS:
        raise UserError(f"invalid storage {args.storage!r}: supported kinds are {', '.join(STORAGE_KINDS)}")
    bucket = args.bucket
    if kind == "file" and "://" in bucket and not bucket.startswith("file://"):
        opt.warn(f'The bucket "{bucket}" doesn\'t look like a file path.')
        opt.warn("Did you forget to specify the `--storage <type>`?")
        if not opt.confirmed():
            raise UserError("Aborted")
    ak, sk, token = resolve_credentials(args.access_key or "", args.secret_key or "", args.session_token or "")
    shards = opt.parse_int(args.shards, "shards")
    try:
        if shards > 1:
            from ..object.sharding import ShardedStorage, shard_name

            return ShardedStorage([new_store(kind, shard_name(bucket, i), ak, sk, token) for i in range(shards)])
        return new_store(kind, bucket, ak, sk, token)
    except UserError as e:
        raise UserError(f"create storage failed: {e}") from None
    except Exception as e:  # noqa: BLE001 - a driver's own errors: one line
        raise UserError(f"create storage failed: {e}") from None


def cleanup(origin: ObjectStorage, prefix: str) -> None:
    """Remove whatever the run left under the prefix (and its directory in a `file` bucket)."""
    try:
        for o in list(origin.list_all(prefix)):
            origin.delete(o.key)
    except Exception as e:  # noqa: BLE001 - best effort, but say so
        log.warning("clean up %s%s: %s", origin, prefix, e)
    # A file bucket keeps the (now empty) directories of the prefix: remove them, in every shard.
    for store in getattr(origin, "stores", [origin]):
        ops = chk.file_ops(WithPrefix(store, prefix))
        if ops is None:
            continue
        for d, _dirs, _files in sorted(os.walk(ops.base), key=lambda t: -len(t[0])):
            try:
                os.rmdir(d)
            except OSError:
                pass


# --- performance ---------------------------------------------------------------------------------


class ObjBench:
    def __init__(self, blob: ObjectStorage, p: Params) -> None:
        self.blob, self.p = blob, p
        self.seed = os.urandom(p.bsize)
        self.small_seed = os.urandom(p.small_size)
        self.fs = chk.file_ops(blob)
        self.group = ""

    def _data(self, seed: bytes, idx: int) -> bytes:
        return seed if idx == 0 else chk.mock_data(seed, idx, len(seed))

    def _get_check(self, key: int, seed: bytes, idx: int) -> None:
        data = self.blob.get(str(key))
        if len(data) != len(seed) or data[:CHECK_BYTES] != self._data(seed, idx)[:CHECK_BYTES]:
            raise RuntimeError("the downloaded content is incorrect")

    def op(self, api: str) -> tuple[Callable[[int], None], int, int]:
        """(function of a key number, first key, number of calls) of an API."""
        p, all_keys = self.p, self.p.scount + self.p.bcount
        if api == "smallput":
            return lambda k: self.blob.put(str(k), self._data(self.small_seed, k)), 0, p.scount
        if api == "smallget":
            return lambda k: self._get_check(k, self.small_seed, k), 0, p.scount
        if api == "put":
            return lambda k: self.blob.put(str(k), self._data(self.seed, k - p.scount)), p.scount, p.bcount
        if api == "get":
            return lambda k: self._get_check(k, self.seed, k - p.scount), p.scount, p.bcount
        if api == "list":
            return lambda k: self._list(), 0, p.threads
        if api == "head":
            return lambda k: self.blob.head(str(k)), 0, all_keys
        if api == "delete":
            return lambda k: self.blob.delete(str(k)), 0, all_keys
        fs = self.fs
        assert fs is not None
        if api == "chmod":
            return lambda k: fs.chmod(str(k), 0o755), 0, all_keys
        if api == "chown":
            return lambda k: fs.chown(str(k), "nobody", self.group), 0, all_keys
        return lambda k: fs.chtimes(str(k), time.time()), 0, all_keys

    def _list(self) -> None:
        self.blob.list("", "", self.p.list_count)

    def run(self, api: str, bars: Any) -> bc.Row:
        title = TITLES[api]
        if api in FS_APIS:
            if self.fs is None:
                return _text_row(title, api, chk.NOT_SUPPORT, bc.YELLOW)
            if api == "chown":
                if os.getuid() != 0:
                    log.warning("chown test should be run by root")
                    return _text_row(title, api, chk.SKIPPED, bc.YELLOW)
                self.group = chk.nobody_group()
        fn, start, count = self.op(api)
        total = self.p.list_count * count if api == "list" else count
        task = bars.add_task(title, total=total)
        step = self.p.list_count if api == "list" else 1
        errors: list[BaseException] = []

        def call(k: int) -> None:
            try:
                fn(k)
            except Exception as e:  # noqa: BLE001 - the row shows failed
                errors.append(e)
            bars.advance(task, step)

        t0 = time.monotonic()
        with ThreadPoolExecutor(max_workers=self.p.threads) as pool:
            list(pool.map(call, range(start, start + count)))
        cost = max(time.monotonic() - t0, 1e-9)
        if errors:
            log.error("%s test failed: %s", api, errors[0])
            return _text_row(title, api, chk.FAILED, bc.RED)
        return self.result(api, cost)

    def result(self, api: str, cost: float) -> bc.Row:
        p, n_all = self.p, self.p.scount + self.p.bcount
        th = p.threads
        if api in ("smallput", "smallget"):
            v, c, unit, cunit = p.scount / cost, th * cost * 1000 / p.scount, "objects/s", "ms/object"
        elif api in ("put", "get"):
            v, c, unit, cunit = p.bsize / 1024 / 1024 * p.bcount / cost, th * cost * 1000 / p.bcount, "MiB/s", "ms/object"
        elif api == "list":
            v, c, unit, cunit = p.list_count * th / cost, cost * 1000, "objects/s", f"ms/ {p.list_count} objects"
        else:
            v, c, unit, cunit = n_all / cost, th * cost * 1000 / n_all, "objects/s", "ms/object"
        vc, cc = bc.color_of(v, c, RANGES[api])
        ctext = bc.go_float_g2(c) if c < 0.01 else bc.go_float(c, 2)
        return bc.Row(TITLES[api], api, v, unit, c, cunit, bc.go_float(v, 2), ctext, vc, cc)


def _text_row(title: str, api: str, text: str, color: str) -> bc.Row:
    return bc.Row(title, api, None, "", None, "", text, text, color, color)


# --- the command -----------------------------------------------------------------------------------


def parse_params(args: argparse.Namespace) -> Params:
    scount = bc.count_arg(args.small_objects, "small-objects", allow_zero=False)
    threads = bc.count_arg(args.threads, "threads", allow_zero=False)
    bsize = bc.size_arg(args.block_size, "K", "block-size", allow_zero=False)
    fsize = bc.size_arg(args.big_object_size, "M", "big-object-size", allow_zero=False)
    small = bc.size_arg(args.small_object_size, "K", "small-object-size", allow_zero=False)
    bcount = math.ceil(fsize / bsize)
    if threads > bcount or threads > scount:
        threads = min(bcount, scount)
        log.warning("The number of threads was set too large and has been reduced to %d", threads)
    return Params(bsize, fsize, small, scount, bcount, threads)


def run(args: argparse.Namespace) -> int:
    if not args.bucket:
        raise UserError("BUCKET is required: pyjuicefs objbench [--storage TYPE] BUCKET")
    shards = opt.parse_int(args.shards, "shards")
    if shards < 0:
        raise UserError(f'invalid value "{args.shards}" for "--shards": must not be negative')
    p = parse_params(args)
    origin = open_store(args)
    if args.storage_class:
        log.warning("--storage-class is not supported by pyjuicefs's object stores: ignored")
    prefix = f"__pyjuicefs_benchmark_{time.time_ns()}__/"
    blob = WithPrefix(origin, prefix)
    nc = bc.no_color(args)
    con = bc.console(no_color=nc)
    try:
        return _run(args, p, origin, blob, con, nc)
    finally:
        cleanup(origin, prefix)
        origin.close()


def _run(args: argparse.Namespace, p: Params, origin: ObjectStorage, blob: ObjectStorage, con: Any,
         nc: bool) -> int:
    checks: list[chk.Check] | None = None
    if args.skip_functional_tests:
        try:
            blob.create()
        except Exception as e:  # noqa: BLE001 - one line
            raise UserError(f"can't create bucket: {e}") from None
    else:
        if not args.json:
            con.print("Start Functional Testing ...")
        checks = chk.run_checks(blob)
        if not args.json:
            colors = {chk.PASS: bc.GREEN, chk.NOT_SUPPORT: bc.YELLOW, "warning": bc.YELLOW, chk.FAILED: bc.RED}
            bc.render_table(con, ("CATEGORY", "TEST", "RESULT"),
                            [[c.category, c.test, Text(c.result, style=colors[c.status])] for c in checks])
            con.print()
    if not args.json:
        con.print("Start Performance Testing ...")
    bm = ObjBench(blob, p)
    rows: dict[str, bc.Row] = {}
    with bc.progress_bars(nc) as bars:
        for api in RUN_ORDER:
            rows[api] = bm.run(api, bars)
    ordered = [rows[a] for a in PRINT_ORDER]
    if args.json:
        doc = {"storage": args.storage.lower(), "bucket": str(origin), "block_size": p.bsize,
               "big_object_size": p.fsize, "small_object_size": p.small_size, "small_objects": p.scount,
               "threads": p.threads,
               "functional": None if checks is None else [
                   {"category": c.category, "test": c.test, "result": c.result, "status": c.status} for c in checks],
               "results": [r.as_json() for r in ordered]}
        print(json.dumps(doc, indent=2, ensure_ascii=False))
        return 0
    con.print(f"Benchmark finished! block-size: {opt.fmt_ibytes(p.bsize)}, big-object-size: {opt.fmt_ibytes(p.fsize)}, "
              f"small-object-size: {opt.fmt_ibytes(p.small_size)}, small-objects: {p.scount}, NumThreads: {p.threads}")
    bc.render_table(con, ("ITEM", "VALUE", "COST"), [bc.row_cells(r) for r in ordered])
    return 0
