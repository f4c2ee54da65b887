"""SQL tables: ours equal the ones JuiceFS 1.4.2 creates, and the reference binary uses a database
that pyjuicefs initialised and wrote — on SQLite, PostgreSQL and MariaDB.

The golden schemas in data/sql/<dialect>.json were captured from the reference binary with

    python tests/compat/test_sql_schema.py sqlite3:///tmp/g.db postgres://…/empty_db mysql://…/empty_db

which runs `juicefs format` on each (empty) database and writes sql_schema.describe() of the result.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from pyjuicefs.format import Format
from pyjuicefs.meta.sql import SQLEngine
from pyjuicefs.meta.sql_schema import describe
from pyjuicefs.meta.types import TRASH_INODE, Attr

DATA = Path(__file__).resolve().parent / "data" / "sql"
KINDS = ["sqlite3", "postgres", "mysql"]


def golden(kind: str) -> dict:
    return json.loads((DATA / f"{kind}.json").read_text())


def schema_of(url: str) -> dict:
    """sql_schema.describe() of the database at `url`, through its own driver connection."""
    e = SQLEngine(url)
    try:
        # describe() runs on a raw DB-API connection; the engine's holds the URL's credentials
        return json.loads(json.dumps(describe(e._conn(), e.dialect.name, e.dialect.prefix)))
    finally:
        e.close()


def reference_format(juicefs: str, url: str, bucket: Path, name: str = "sqlvol") -> subprocess.CompletedProcess:
    return subprocess.run([juicefs, "format", "--storage", "file", "--bucket", f"{bucket}/", url, name],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("kind", KINDS)
def test_our_schema_equals_golden(kind, new_meta_url):
    url = new_meta_url(kind)
    e = SQLEngine(url)
    e.init_schema()
    e.init_schema()  # idempotent
    e.close()
    assert schema_of(url) == golden(kind)


@pytest.mark.parametrize("kind", KINDS)
def test_reference_schema_equals_golden(kind, new_meta_url, juicefs_bin, tmp_path):
    """Guards the golden file itself: the reference binary still creates exactly this."""
    url = new_meta_url(kind)
    r = reference_format(juicefs_bin, url, tmp_path / "bucket")
    assert r.returncode == 0, r.stderr[-2000:]
    assert schema_of(url) == golden(kind)
    # and we read what it wrote: settings, root and trash nodes, initial counters
    e = SQLEngine(url)
    try:
        fmt = Format.from_json(e.load_setting())
        assert fmt.Name == "sqlvol" and fmt.DirStats
        root = e.txn(lambda tx: tx.get_attr(1), readonly=True)
        assert (root.typ, root.mode, root.nlink, root.length, root.parent) == (2, 0o777, 2, 4096, 1)
        assert abs(root.mtime - time.time()) < 120 and root.atime == root.mtime
        assert e.txn(lambda tx: tx.get_attr(TRASH_INODE)).mode == 0o555
        assert (e.get_counter("nextInode"), e.get_counter("nextChunk")) == (2, 1)
    finally:
        e.close()


def _our_volume(url: str, bucket: Path) -> Format:
    """Initialise a volume by hand through the engine: schema, settings JSON, root (and trash)."""
    fmt = Format(Name="ourvol", UUID=str(uuid.uuid4()), Storage="file", Bucket=f"{bucket}/",
                 MetaVersion=1, MinClientVersion="1.1.0-A", DirStats=True)
    e = SQLEngine(url)
    try:
        e.init_schema()
        e.save_setting(fmt.to_json())
        now = time.time_ns()
        sec, nsec = divmod(now, 1_000_000_000)

        def nodes(tx):
            for ino, mode in ((1, 0o777), (TRASH_INODE, 0o555)):
                tx.set_attr(ino, Attr(typ=2, mode=mode, nlink=2, length=4096, parent=1, atime=sec, atimensec=nsec,
                                      mtime=sec, mtimensec=nsec, ctime=sec, ctimensec=nsec))

        e.txn(nodes)
        e.txn(lambda tx: (tx.incr_counter("usedSpace", 4096), tx.incr_counter("totalInodes", 1)))
    finally:
        e.close()
    return fmt


@pytest.mark.parametrize("kind", KINDS)
def test_reference_uses_a_database_we_initialised(kind, new_meta_url, juicefs_bin, tmp_path):
    url = new_meta_url(kind)
    _our_volume(url, tmp_path / "bucket")
    r = subprocess.run([juicefs_bin, "status", url], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    status = json.loads(r.stdout[r.stdout.index("\n{") + 1 if not r.stdout.startswith("{") else 0:])  # xorm logs first
    assert status["Setting"]["Name"] == "ourvol"
    assert (status["Stat"]["UsedSpace"], status["Stat"]["UsedInodes"]) == (4096, 1)
    # its Sync2 runs over our tables without error and without changing them
    r = reference_format(juicefs_bin, url, tmp_path / "bucket", "ourvol")
    assert r.returncode == 0, r.stderr[-2000:]
    assert not [ln for ln in r.stderr.splitlines() if "<ERROR>" in ln or "<FATAL>" in ln]
    assert schema_of(url) == golden(kind)
    r = subprocess.run([juicefs_bin, "fsck", url], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]


def capture(urls: list[str]) -> None:
    """Write data/sql/<dialect>.json from `juicefs format` on each given empty database."""
    DATA.mkdir(parents=True, exist_ok=True)
    for url in urls:
        with tempfile.TemporaryDirectory() as d:
            r = reference_format("juicefs", url, Path(d))
            if r.returncode:
                sys.exit(r.stderr)
            kind = SQLEngine(url).dialect.name
            text = json.dumps(schema_of(url), indent=1, sort_keys=True, ensure_ascii=False)
            # one column per line: fold the innermost lists
            text = re.sub(r"\[\s+([^\[\]{}]*?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text)
            (DATA / f"{kind}.json").write_text(text + "\n")
            print("wrote", DATA / f"{kind}.json")


if __name__ == "__main__":
    capture(sys.argv[1:])
