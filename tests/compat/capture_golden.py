#!/usr/bin/env python3
"""Regenerate the golden byte vectors in tests/compat/data/golden/ from the reference binary.

Every value in those fixture files is produced here by the reference `juicefs` (1.4.x) binary or
read back through its FUSE mount; nothing is written by hand. Run it as root on a machine with
/dev/fuse, redis-server, etcd and moto_server on PATH:

    python tests/compat/capture_golden.py [--out tests/compat/data/golden]

It starts its own throwaway redis-server, etcd and moto server on free loopback ports, formats
volumes on Redis, SQLite, etcd (TKV) and S3 (moto), mounts them, writes the same small tree (a
directory, a 5 MiB file spanning two blocks, a symlink, a hard link, a fifo, a char device, an
xattr, known times and modes, a file written in three slices and then compacted, a clone, a sparse
file over two chunks, a deleted file in the trash, POSIX and BSD locks held while capturing), then
dumps the raw records of each engine, the bucket listing and a few object bodies. Tests compare
pyjuicefs's codecs against these files (tests/compat/test_golden.py).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import socket
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterator

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "data" / "golden"

BLOCK = 4 << 20
# Inputs (not golden values): what we ask the binary to store.
ATIME_NS = 1_600_000_000_123_456_789
MTIME_NS = 1_612_325_106_789_012_345
XATTR = ("user.k", b"val")
S3_ACCESS, S3_SECRET = "a", "b"
RSA_PASSPHRASE = "12345678"


def pattern(n: int, seed: int = 7) -> bytes:
    """Deterministic, poorly compressible bytes."""
    out = bytearray()
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:n])


def text_pattern(n: int) -> bytes:
    """Deterministic, very compressible bytes (for compression framing)."""
    line = b"JuiceFS golden vector line, compressible payload 0123456789\n"
    return (line * (n // len(line) + 1))[:n]


def hexb(b: bytes | None) -> str | None:
    return None if b is None else b.hex()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"port {port} did not open")


def run(*args: str, env: dict[str, str] | None = None) -> str:
    p = subprocess.run(args, capture_output=True, text=True, env=env)
    if p.returncode:
        raise RuntimeError(f"{' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p.stdout


# --- services ------------------------------------------------------------------------------------

@contextlib.contextmanager
def service(args: list[str], port: int, log: Path) -> Iterator[None]:
    with open(log, "wb") as f:
        proc = subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT)
    try:
        wait_port(port)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def redis_service(tmp: Path) -> tuple[contextlib.AbstractContextManager, int]:
    port = free_port()
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(tmp)]
    return service(args, port, tmp / "redis.log"), port


def etcd_service(tmp: Path) -> tuple[contextlib.AbstractContextManager, int]:
    port, peer = free_port(), free_port()
    args = ["etcd", "--data-dir", str(tmp / "etcd"), "--name", "gold",
            "--listen-client-urls", f"http://127.0.0.1:{port}",
            "--advertise-client-urls", f"http://127.0.0.1:{port}",
            "--listen-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-cluster", f"gold=http://127.0.0.1:{peer}"]
    return service(args, port, tmp / "etcd.log"), port


def moto_service(tmp: Path) -> tuple[contextlib.AbstractContextManager, int]:
    port = free_port()
    return service(["moto_server", "-H", "127.0.0.1", "-p", str(port)], port, tmp / "moto.log"), port


# --- juicefs -------------------------------------------------------------------------------------

def fmt(meta: str, name: str, *opts: str) -> None:
    run("juicefs", "format", *opts, meta, name)


@contextlib.contextmanager
def mounted(meta: str, mnt: Path, *opts: str, env: dict[str, str] | None = None) -> Iterator[Path]:
    mnt.mkdir(parents=True, exist_ok=True)
    # No kernel caches: stat must show what is in the engine (clone/tier change it behind the kernel).
    run("juicefs", "mount", "-d", "--no-usage-report", "--attr-cache=0", "--entry-cache=0",
        "--dir-entry-cache=0", *opts, meta, str(mnt), env=env)
    try:
        yield mnt
    finally:
        os.sync()
        run("juicefs", "umount", str(mnt))
        wait_mount_exit(mnt)


def wait_mount_exit(mnt: Path, timeout: float = 20) -> None:
    """The mount daemon lingers after umount while it closes its session: wait for it (it must
    not outlive the metadata service we stop next), and kill it if it hangs."""
    needle = str(mnt).encode()
    deadline = time.time() + timeout
    while True:
        pids = []
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                try:
                    if needle in (d / "cmdline").read_bytes().split(b"\0"):
                        pids.append(int(d.name))
                except OSError:
                    pass
        if not pids:
            return
        if time.time() > deadline:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, 9)
            return
        time.sleep(0.2)


@contextlib.contextmanager
def held_locks(posix_path: Path, bsd_path: Path) -> Iterator[int]:
    """A child process holding fcntl locks (write [0,100), read [200,250)) on one file and a BSD
    LOCK_SH on another, until we return."""
    code = (
        "import fcntl,os,sys\n"
        f"a=open({str(posix_path)!r},'r+b'); b=open({str(bsd_path)!r},'rb')\n"
        "fcntl.lockf(a, fcntl.LOCK_EX, 100, 0, 0)\n"
        "fcntl.lockf(a, fcntl.LOCK_SH, 50, 200, 0)\n"
        "fcntl.flock(b, fcntl.LOCK_SH)\n"
        "print(os.getpid(), flush=True); sys.stdin.read()\n"
    )
    p = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True)
    try:
        pid = int(p.stdout.readline())
        yield pid
    finally:
        p.stdin.close()
        p.wait(10)


def build_tree(mnt: Path) -> dict[str, Any]:
    """Write the same small tree on every volume; return the inputs used."""
    d = mnt / "d"
    d.mkdir()
    f = d / "f"
    f.write_bytes(pattern(5 << 20))  # one slice, two blocks: 4 MiB + 1 MiB
    os.chmod(f, 0o640)
    os.setxattr(f, XATTR[0], XATTR[1])
    os.utime(f, ns=(ATIME_NS, MTIME_NS))
    os.symlink("d/f", mnt / "sl")
    os.link(f, d / "hl")
    os.mkfifo(d / "fifo", 0o600)
    os.mknod(d / "chr", 0o600 | stat.S_IFCHR, os.makedev(1, 7))
    # Three slices in one chunk: [0,3000) then [4096,5096) then [1000,1500).
    g = d / "g"
    with open(g, "wb") as fh:
        for off, n in ((0, 3000), (4096, 1000), (1000, 500)):
            fh.seek(off)
            fh.write(pattern(n, seed=off))
            fh.flush()
            os.fsync(fh.fileno())
    # A sparse file over two chunks (64 MiB each): data at 0 and at 70 MiB.
    with open(d / "sparse", "wb") as fh:
        fh.write(b"head")
        fh.seek(70 << 20)
        fh.write(b"tail")
    # A file deleted into the trash.
    (d / "del").write_bytes(b"deleted")
    os.unlink(d / "del")
    os.sync()
    return {"atime_ns": ATIME_NS, "mtime_ns": MTIME_NS, "xattr": [XATTR[0], XATTR[1].decode()],
            "f_bytes": "pattern(5 MiB, seed=7)", "symlink_target": "d/f"}


def after_tree(mnt: Path) -> None:
    """Steps that need the juicefs tools on a mounted tree: compaction (delayed slices) and clone."""
    g = mnt / "d" / "g"
    before = g.read_bytes()
    run("juicefs", "compact", str(g))
    assert g.read_bytes() == before
    run("juicefs", "clone", str(mnt / "d" / "f"), str(mnt / "d" / "cl"))
    os.sync()


STAT_PATHS = ["", "d", "d/f", "d/hl", "sl", "d/fifo", "d/chr", "d/g", "d/sparse", "d/cl"]


def stats(mnt: Path) -> dict[str, Any]:
    """The binary's view of each node, through its mount (expected values for the decoders)."""
    out = {}
    for p in STAT_PATHS:
        st = os.lstat(mnt / p)
        out[p or "/"] = {
            "ino": st.st_ino, "mode": st.st_mode, "uid": st.st_uid, "gid": st.st_gid,
            "nlink": st.st_nlink, "size": st.st_size, "rdev": st.st_rdev,
            "atime_ns": st.st_atime_ns, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns,
        }
    out["d/f"]["sha256"] = hashlib.sha256((mnt / "d/f").read_bytes()).hexdigest()
    out["d/g"]["sha256"] = hashlib.sha256((mnt / "d/g").read_bytes()).hexdigest()
    out["sl"]["target"] = os.readlink(mnt / "sl")
    trash = mnt / ".trash"
    out[".trash"] = sorted(str(p.relative_to(trash)) for p in trash.rglob("*"))
    return out


def dump(meta: str, tmp: Path) -> Any:
    path = tmp / "dump.json"
    run("juicefs", "dump", meta, str(path))
    return json.loads(path.read_text())


def bucket_listing(root: Path) -> list[dict[str, Any]]:
    out = []
    for p in sorted(root.rglob("*")):
        if p.is_file():
            out.append({"key": str(p.relative_to(root)), "size": p.stat().st_size})
    return out


# --- raw readers ---------------------------------------------------------------------------------

def redis_raw(port: int, db: int) -> dict[str, Any]:
    import redis

    r = redis.Redis(port=port, db=db)
    out: dict[str, Any] = {}
    for key in sorted(r.scan_iter(count=1000)):
        t = r.type(key).decode()
        if t == "string":
            v: Any = hexb(r.get(key))
        elif t == "hash":
            v = {hexb(k): hexb(x) for k, x in sorted(r.hgetall(key).items())}
        elif t == "list":
            v = [hexb(x) for x in r.lrange(key, 0, -1)]
        elif t == "set":
            v = sorted(hexb(x) for x in r.smembers(key))
        elif t == "zset":
            v = [[hexb(m), s] for m, s in r.zrange(key, 0, -1, withscores=True)]
        else:
            raise RuntimeError(f"unexpected redis type {t} of {key!r}")
        out[key.hex()] = {"type": t, "value": v}
    return out


def sqlite_raw(path: Path) -> dict[str, Any]:
    con = sqlite3.connect(path)
    tables: dict[str, Any] = {}
    schema = [r[0] for r in con.execute(
        "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY type DESC, name")]
    for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name"):
        cur = con.execute(f"SELECT * FROM {name}")
        cols = [c[0] for c in cur.description]
        rows = []
        for row in cur:
            rows.append({c: (v.hex() if isinstance(v, bytes) else v) for c, v in zip(cols, row)})
        types = {c: t for _, c, t, *_ in con.execute(f"PRAGMA table_info({name})")}
        tables[name] = {"columns": types, "rows": rows}
    con.close()
    return {"schema": schema, "tables": tables}


def etcd_raw(port: int) -> list[list[str]]:
    body = json.dumps({"key": base64.b64encode(b"\0").decode(),
                       "range_end": base64.b64encode(b"\0").decode()}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v3/kv/range", data=body, method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        kvs = json.loads(resp.read()).get("kvs", [])
    return sorted([base64.b64decode(kv["key"]).hex(), base64.b64decode(kv.get("value", "")).hex()]
                  for kv in kvs)


# --- captures ------------------------------------------------------------------------------------

def capture_tree_volume(meta: str, tmp: Path, raw, extra_mount_opts: tuple[str, ...] = ()) -> dict:
    """Format `meta`, write the tree through a mount, capture raw records while mounted."""
    bucket = tmp / "bucket"
    fmt(meta, "gold", "--storage", "file", "--bucket", f"{bucket}/")
    setting_after_format = raw()
    mnt = tmp / "mnt"
    with mounted(meta, mnt, "--enable-xattr", *extra_mount_opts):
        inputs = build_tree(mnt)
        after_tree(mnt)
        st = stats(mnt)
        with held_locks(mnt / "d" / "f", mnt / "d" / "g") as pid:
            records = raw()
        st["lock_holder_pid"] = pid
        # A tier changes the attr encoding (tier byte) and the setting (MinClientVersion 1.4.0-A).
        run("juicefs", "config", meta, "--tier", "1", "--storage-class", "COLD", "--yes")
        tfile = mnt / "d" / "tiered"
        tfile.write_bytes(b"tier")
        os.sync()
        st["d/tiered"] = {"ino": os.lstat(tfile).st_ino}
        run("juicefs", "tier", "set", meta, "--tier", "1", "/d/tiered")
        after_tier = raw()
        dumped = dump(meta, tmp)
    return {"inputs": inputs, "stat": st, "after_format": setting_after_format, "mounted": records,
            "after_tier": after_tier, "dump": dumped, "bucket": bucket_listing(bucket)}


def capture_redis(tmp: Path) -> dict:
    ctx, port = redis_service(tmp)
    with ctx:
        meta = f"redis://127.0.0.1:{port}/1"
        out = capture_tree_volume(meta, tmp, lambda: redis_raw(port, 1))
        out["acl"] = capture_acl(f"redis://127.0.0.1:{port}/2", tmp / "acl", lambda: redis_raw(port, 2))
    return out


def capture_acl(meta: str, tmp: Path, raw) -> dict:
    """An --enable-acl volume with one access ACL on a file and a default ACL on a directory."""
    import struct

    def acl_xattr(entries: list[tuple[int, int, int]]) -> bytes:  # Linux posix_acl_xattr, v2, LE
        return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)

    undefined = 0xFFFFFFFF
    access = [(0x01, 6, undefined), (0x02, 4, 1000), (0x04, 4, undefined), (0x10, 6, undefined),
              (0x20, 0, undefined)]
    tmp.mkdir()
    fmt(meta, "goldacl", "--storage", "file", "--bucket", f"{tmp}/bucket/", "--enable-acl")
    mnt = tmp / "mnt"
    with mounted(meta, mnt):
        f = mnt / "f"
        f.write_bytes(b"acl")
        os.setxattr(f, "system.posix_acl_access", acl_xattr(access))
        dd = mnt / "dd"
        dd.mkdir()
        os.setxattr(dd, "system.posix_acl_default", acl_xattr(access))
        os.sync()
        st = {p: {"ino": os.lstat(mnt / p).st_ino, "mode": os.lstat(mnt / p).st_mode}
              for p in ("f", "dd")}
        st["f"]["posix_acl_access"] = os.getxattr(f, "system.posix_acl_access").hex()
        st["dd"]["posix_acl_default"] = os.getxattr(dd, "system.posix_acl_default").hex()
        records = raw()
    return {"input_entries": access, "stat": st, "records": records}


def capture_sqlite(tmp: Path) -> dict:
    db = tmp / "gold.db"
    meta = f"sqlite3://{db}"
    out = capture_tree_volume(meta, tmp, lambda: sqlite_raw(db))
    return out


def capture_etcd(tmp: Path) -> dict:
    ctx, port = etcd_service(tmp)
    with ctx:
        meta = f"etcd://127.0.0.1:{port}/gold"
        return capture_tree_volume(meta, tmp, lambda: etcd_raw(port))


def capture_objects(tmp: Path, out_dir: Path) -> dict:
    """Object names and bodies: lz4 + hash-prefix, zstd, shards; SQLite metadata."""
    result: dict[str, Any] = {}
    payload = text_pattern(BLOCK + 300_000)  # two blocks, compressible
    for name, opts in (("lz4hp", ["--compress", "lz4", "--hash-prefix"]),
                       ("zstd", ["--compress", "zstd"]),
                       ("shards", ["--shards", "3"])):
        vt = tmp / name
        vt.mkdir()
        db = vt / "meta.db"
        meta = f"sqlite3://{db}"
        bucket = f"{vt}/bucket-%d/" if name == "shards" else f"{vt}/bucket/"
        fmt(meta, name, "--storage", "file", "--bucket", bucket, *opts)
        with mounted(meta, vt / "mnt") as mnt:
            (mnt / "p").write_bytes(payload)
            if name == "shards":  # more keys, to see them spread over the shards
                for i in range(8):
                    (mnt / f"q{i}").write_bytes(b"shard %d" % i)
            os.sync()
            ino = os.lstat(mnt / "p").st_ino
            back = (mnt / "p").read_bytes()
            assert back == payload
        tables = sqlite_raw(db)["tables"]
        chunks = tables["jfs_chunk"]["rows"]
        objs = []
        roots = sorted(vt.glob("bucket-*")) if name == "shards" else [vt / "bucket"]
        for shard, root in enumerate(roots):
            for item in bucket_listing(root):
                item["shard"] = shard
                if "/chunks/" in item["key"] and item["key"].endswith("_" + str(BLOCK)) or \
                        item["key"].endswith("_%d" % (len(payload) - BLOCK)):
                    idx = int(item["key"].rsplit("_", 2)[1])
                    plain = payload[idx * BLOCK:(idx + 1) * BLOCK]
                    item["plain_sha256"] = hashlib.sha256(plain).hexdigest()
                    item["plain_size"] = len(plain)
                    if name != "shards":
                        fname = f"{name}_{item['key'].replace('/', '_')}.bin"
                        shutil.copyfile(root / item["key"], out_dir / "objects" / fname)
                        item["file"] = f"objects/{fname}"
                objs.append(item)
        result[name] = {"format_opts": opts, "inode": ino, "chunks": chunks, "objects": objs,
                        "setting": tables["jfs_setting"]["rows"][0]["value"],
                        "payload": "text_pattern(4 MiB + 300000)",
                        "payload_sha256": hashlib.sha256(back).hexdigest()}
    return result


def create_bucket(port: int, name: str) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                      aws_access_key_id=S3_ACCESS, aws_secret_access_key=S3_SECRET)
    s3.create_bucket(Bucket=name)


def encrypted_object(meta: str, tmp: Path, port: int, name: str, env: dict[str, str]) -> dict:
    """One block object of a volume with --encrypt-rsa-key, and the plain bytes read back."""
    import boto3

    plain = text_pattern(1000)
    with mounted(meta, tmp / "mnt", env=env) as mnt:
        (mnt / "e").write_bytes(plain)
        os.sync()
        back = (mnt / "e").read_bytes()
    s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                      aws_access_key_id=S3_ACCESS, aws_secret_access_key=S3_SECRET)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=name)["Contents"] if "/chunks/" in o["Key"]]
    assert len(keys) == 1, keys
    return {"key": keys[0], "body": s3.get_object(Bucket=name, Key=keys[0])["Body"].read().hex(),
            "plain": back.hex()}


def capture_s3_setting(tmp: Path) -> dict:
    """SecretKey (and an RSA EncryptKey) encrypted with AES-GCM keyed by md5(UUID)."""
    ctx, port = moto_service(tmp)
    key = tmp / "rsa.pem"
    run("openssl", "genrsa", "-out", str(key), "-aes256", "-passout", f"pass:{RSA_PASSPHRASE}", "2048")
    env = dict(os.environ, JFS_RSA_PASSPHRASE=RSA_PASSPHRASE)
    with ctx:
        out = {}
        for name, extra in (("gold-s3", []), ("gold-s3enc", ["--encrypt-rsa-key", str(key)])):
            db = tmp / f"{name}.db"
            create_bucket(port, name)  # juicefs's CreateBucket sends a region moto rejects
            args = ["juicefs", "format", "--storage", "s3", "--bucket",
                    f"http://127.0.0.1:{port}/{name}", "--access-key", S3_ACCESS,
                    "--secret-key", S3_SECRET, *extra, f"sqlite3://{db}", name]
            run(*args, env=env)
            row = sqlite_raw(db)["tables"]["jfs_setting"]["rows"]
            out[name] = {"setting_rows": row, "access_key": S3_ACCESS, "secret_key": S3_SECRET}
            if extra:
                out[name]["encrypt_key_pem"] = key.read_text()
                out[name]["rsa_passphrase"] = RSA_PASSPHRASE
                out[name]["object"] = encrypted_object(f"sqlite3://{db}", tmp, port, name, env)
        # Go's JSON escapes <, > and & and keeps non-ASCII as UTF-8: a bucket path with both.
        db = tmp / "escape.db"
        bucket = tmp / "b<&>é"
        run("juicefs", "format", "--storage", "file", "--bucket", f"{bucket}/", f"sqlite3://{db}",
            "gold-escape")
        out["escape"] = {"setting_rows": sqlite_raw(db)["tables"]["jfs_setting"]["rows"],
                         "bucket": f"{bucket}/"}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    if not os.path.exists("/dev/fuse"):
        sys.exit("needs /dev/fuse: the tree is written through a real juicefs mount")
    version = run("juicefs", "version").strip()
    out: Path = args.out
    (out / "objects").mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="jfs-golden-"))
    try:
        parts = {"redis": capture_redis, "sqlite": capture_sqlite, "etcd": capture_etcd,
                 "objects": lambda d: capture_objects(d, out), "s3_setting": capture_s3_setting}
        for name, fn in parts.items():
            (tmp / name).mkdir()
            data = fn(tmp / name)
            data["_meta"] = {"juicefs_version": version,
                             "captured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            (out / f"{name}.json").write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
            print(f"captured {name}", flush=True)
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
