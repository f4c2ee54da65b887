"""Interoperability through real mounts: a tree written through a pyjuicefs mount reads byte-identical
through a reference `juicefs mount` of the same volume and the reverse; a pyjuicefs mount and a
reference mount of one volume at the same time see each other's closed files; then the reference
`juicefs fsck` finds the volume clean.

Every metadata engine (Redis, PostgreSQL, MySQL, SQLite) with both `file` and `s3` (moto) storage;
volumes are formatted by either client in turn. The 80 MiB file (random overwrites, across the 64 MiB
chunk boundary) is written on two combinations only, to keep the matrix affordable on 2 cores.
"""

from __future__ import annotations

import os
import uuid

import pytest

from fsmodel import MiB, assert_same_tree, format_volume, run_client, snapshot, write_sample_tree

# (engine, storage, formatted by, big file size)
COMBOS = [
    ("redis", "file", "pyjuicefs", 80 * MiB),
    ("redis", "s3", "juicefs", 0),
    ("sqlite3", "file", "juicefs", 0),
    ("sqlite3", "s3", "pyjuicefs", 80 * MiB),
    ("postgres", "file", "pyjuicefs", 0),
    ("postgres", "s3", "juicefs", 0),
    ("mysql", "file", "juicefs", 0),
    ("mysql", "s3", "pyjuicefs", 0),
    ("etcd", "file", "pyjuicefs", 0),
    ("etcd", "s3", "juicefs", 0),
]
MOUNT_ARGS = ("--enable-xattr",)


def sparse_size(big: int) -> int:
    # Where the big file is written, the sparse file crosses a chunk boundary too.
    return 66 * MiB if big else 9 * MiB


@pytest.fixture
def mounters(pyjuicefs_mount, juicefs_mount):
    # PYJUICEFS_ORACLE_SELFTEST=1 puts the reference on both sides: it checks the oracle, not pyjuicefs.
    if os.environ.get("PYJUICEFS_ORACLE_SELFTEST") == "1":
        return {"pyjuicefs": juicefs_mount, "juicefs": juicefs_mount}
    return {"pyjuicefs": pyjuicefs_mount, "juicefs": juicefs_mount}


def storage_args(kind: str, tmp_path, request) -> list[str]:
    if kind == "file":
        return ["--storage", "file", "--bucket", f"{tmp_path / 'bucket'}/"]
    s3 = request.getfixturevalue("s3_server")
    bucket = f"interop-{uuid.uuid4().hex[:10]}"
    s3.client().create_bucket(Bucket=bucket)  # the reference cannot create buckets on moto
    return ["--storage", "s3", "--bucket", s3.bucket_url(bucket),
            "--access-key", s3.access_key, "--secret-key", s3.secret_key]


def assert_fsck_clean(meta: str, juicefs_bin: str) -> None:
    p = run_client("juicefs", "fsck", meta, juicefs_bin=juicefs_bin, timeout=300)
    out = p.stdout + p.stderr
    assert p.returncode == 0, f"juicefs fsck exited {p.returncode}:\n{out[-4000:]}"
    bad = [ln for ln in out.splitlines() if "lost" in ln.lower() or "broken" in ln.lower()]
    assert not bad, "juicefs fsck reports problems:\n" + "\n".join(bad)


def check_written_then_read(mount, writer: str, reader: str, meta: str, sub: str, expected, *,
                            big: int, seed: int) -> None:
    """Write the sample tree into `sub` through `writer`, unmount, read it back through `reader`."""
    m = mount[writer](meta, None, *MOUNT_ARGS)
    try:
        os.mkdir(os.path.join(m.path, sub))
        write_sample_tree(os.path.join(m.path, sub), big_size=big, sparse_size=sparse_size(big), seed=seed)
        assert_same_tree(expected, snapshot(os.path.join(m.path, sub)), ("local", f"{writer} (writer)"))
    finally:
        m.umount()
    m = mount[reader](meta, None, *MOUNT_ARGS)
    try:
        assert_same_tree(expected, snapshot(os.path.join(m.path, sub)), ("local", f"{reader} (reader)"))
    finally:
        m.umount()


def check_concurrent(mount, meta: str) -> None:
    """Both clients mounted at once: a file closed on one is seen (and read whole) by an open on the other."""
    a = mount["pyjuicefs"](meta, None, *MOUNT_ARGS)
    try:
        b = mount["juicefs"](meta, None, *MOUNT_ARGS)
        try:
            for src, dst, name in ((a, b, "from-py"), (b, a, "from-ref")):
                data = os.urandom(3 * MiB + 17)
                with open(os.path.join(src.path, f"live-{name}"), "wb") as f:
                    f.write(data)
                with open(os.path.join(dst.path, f"live-{name}"), "rb") as f:
                    assert f.read() == data, f"{name}: the other mount read different bytes"
                os.mkdir(os.path.join(src.path, f"dir-{name}"))
                with open(os.path.join(src.path, f"dir-{name}", "inner"), "wb") as f:
                    f.write(b"inner " + name.encode())
                with open(os.path.join(dst.path, f"dir-{name}", "inner"), "rb") as f:
                    assert f.read() == b"inner " + name.encode()
        finally:
            b.umount()
    finally:
        a.umount()


@pytest.mark.timeout(900)
@pytest.mark.parametrize("engine,storage,formatter,big", COMBOS,
                         ids=[f"{e}-{s}-fmt_{f}{'-big' if b else ''}" for e, s, f, b in COMBOS])
def test_interop_mount(engine, storage, formatter, big, mounters, new_meta_url, tmp_path, request, juicefs_bin):
    meta = new_meta_url(engine)
    format_volume(formatter, meta, "interop", *storage_args(storage, tmp_path, request), "--trash-days", "0",
                  juicefs_bin=juicefs_bin)
    expected = {}
    for sub, seed in (("from-py", 1), ("from-ref", 2)):
        local = tmp_path / f"local-{sub}"
        local.mkdir()
        write_sample_tree(str(local), big_size=big, sparse_size=sparse_size(big), seed=seed)
        expected[sub] = snapshot(str(local))

    check_written_then_read(mounters, "pyjuicefs", "juicefs", meta, "from-py", expected["from-py"], big=big, seed=1)
    check_written_then_read(mounters, "juicefs", "pyjuicefs", meta, "from-ref", expected["from-ref"], big=big,
                            seed=2)
    check_concurrent(mounters, meta)
    assert_fsck_clean(meta, juicefs_bin)

