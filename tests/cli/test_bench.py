"""`pyjuicefs bench PATH` on a plain directory: every row, the JSON form, colours, bad arguments.
(On a mount, with the statistics rows: tests/fuse/test_bench_mount.py.)"""

from __future__ import annotations

import os
import re

import pytest

from pyjuicefs.cli.bench import Case, find_mount_root, mount_rows

ROWS = ("Write big file", "Read big file", "Write small file", "Read small file", "Stat file")
MOUNT_TITLES = ("FUSE operation", "Update meta", "Put object", "Get object", "Delete object",
                "Write into cache", "Read from cache")
TINY = ("--big-file-size", "2", "--small-file-size", "16K", "--small-file-count", "5")


@pytest.fixture(autouse=True)
def no_drop_caches(monkeypatch):
    # Dropping the machine's page cache is what a user's bench does; tests must not.
    monkeypatch.setenv("SKIP_DROP_CACHES", "true")


def table_rows(out: str) -> dict[str, list[str]]:
    """ITEM -> [VALUE, COST] of the result table."""
    rows = {}
    for line in out.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


def test_plain_directory_table(cli, tmp_path):
    r = cli("bench", tmp_path, *TINY, "-p", "2")
    assert r.rc == 0, r.err
    lines = r.out.splitlines()
    assert lines[0] == "Benchmark finished!"
    assert lines[1] == ("BlockSize: 1.0 MiB, BigFileSize: 2.0 MiB, SmallFileSize: 16 KiB, "
                        "SmallFileCount: 5, NumThreads: 2")
    assert lines[2] == lines[4] == lines[-1] and re.fullmatch(r"(\+-+)+\+", lines[2])
    assert re.fullmatch(r"\| +ITEM +\| +VALUE +\| +COST +\|", lines[3])
    rows = table_rows(r.out)
    assert list(rows)[1:] == list(ROWS)  # the header first, then JuiceFS's rows in its order
    for item in ROWS[:2]:
        assert re.fullmatch(r"\d+\.\d\d MiB/s", rows[item][0]) and re.fullmatch(r"\d+\.\d\d s/file", rows[item][1])
    for item in ROWS[2:]:
        assert re.fullmatch(r"\d+\.\d files/s", rows[item][0]) and re.fullmatch(r"\d+\.\d\d ms/file", rows[item][1])
    assert not any(t in r.out for t in MOUNT_TITLES)  # not a mount: no statistics rows
    assert "\x1b[" not in r.out  # not a terminal: no colours
    assert os.listdir(tmp_path) == []  # the benchmark directory is gone
    assert "Clear cache operation has been skipped" in r.err


def test_json(cli, tmp_path):
    r = cli("bench", tmp_path, *TINY, "--json")
    assert r.rc == 0, r.err
    doc = r.json
    assert doc["path"] == str(tmp_path) and doc["mount_point"] is None
    assert (doc["block_size"], doc["big_file_size"], doc["small_file_size"], doc["small_file_count"],
            doc["threads"]) == (1 << 20, 2 << 20, 16 << 10, 5, 1)
    assert [x["item"] for x in doc["results"]] == list(ROWS)
    assert [x["name"] for x in doc["results"]] == ["bigwr", "bigrd", "smallwr", "smallrd", "stat"]
    for x in doc["results"]:
        assert x["value"] > 0 and x["cost"] > 0
        assert set(x) == {"item", "name", "value", "unit", "cost", "cost_unit"}
    assert [x["unit"] for x in doc["results"]] == ["MiB/s", "MiB/s", "files/s", "files/s", "files/s"]
    assert "Benchmark finished" not in r.out and "+--" not in r.out
    assert os.listdir(tmp_path) == []


def test_only_small_files(cli, tmp_path):
    r = cli("bench", tmp_path, "--big-file-size", "0", "--small-file-count", "3", "--json")
    assert r.rc == 0, r.err
    assert [x["name"] for x in r.json["results"]] == ["smallwr", "smallrd", "stat"]


def test_only_big_files_with_units(cli, tmp_path):
    # A big file is rounded up to whole blocks; bare numbers are MiB for the sizes.
    r = cli("bench", tmp_path, "--block-size", "512K", "--big-file-size", "1.2", "--small-file-count", "0", "--json")
    assert r.rc == 0, r.err
    doc = r.json
    assert doc["block_size"] == 512 << 10 and doc["big_file_size"] == int(1.2 * (1 << 20))
    assert [x["name"] for x in doc["results"]] == ["bigwr", "bigrd"]


def test_colours_on_a_terminal(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("FORCE_COLOR", "1")  # as if stdout were a terminal
    monkeypatch.delenv("NO_COLOR", raising=False)
    r = cli("bench", tmp_path, *TINY)
    assert r.rc == 0, r.err
    assert re.search(r"\x1b\[(3[123]|9[123])m", r.out)  # green/yellow/red values
    r = cli("--no-color", "bench", tmp_path, *TINY)
    assert r.rc == 0 and "\x1b[3" not in r.out and "\x1b[9" not in r.out


def test_case_sizes_match_juicefs():
    assert Case.new("bigfile", 3 << 20, 1, 1 << 20) == Case("bigfile", 3 << 20, 1, 1 << 20, 3)
    assert Case.new("bigfile", (2 << 20) + 1, 1, 1 << 20).fsize == 3 << 20  # rounded up to blocks
    assert Case.new("smallfile", 128 << 10, 100, 1 << 20) == Case("smallfile", 128 << 10, 100, 128 << 10, 1)


def test_mount_rows_from_stats_diff():
    before = {"juicefs_fuse_ops_durations_histogram_seconds_total": 10,
              "juicefs_fuse_ops_durations_histogram_seconds_sum": 1.0,
              "juicefs_object_request_durations_histogram_seconds_PUT_total": 1}
    after = {"juicefs_fuse_ops_durations_histogram_seconds_total": 110,
             "juicefs_fuse_ops_durations_histogram_seconds_sum": 1.1,
             "juicefs_object_request_durations_histogram_seconds_PUT_total": 5}
    rows = {r.item: r for r in mount_rows(before, after, 1)}
    assert list(rows) == list(MOUNT_TITLES)
    fuse = rows["FUSE operation"]
    assert (fuse.value, fuse.value_text, fuse.cost_text) == (100, "100", "1.00")
    put = rows["Put object"]  # counted, latency not recorded
    assert (put.value, put.cost, put.cost_text) == (4, None, "n/a")
    meta = rows["Update meta"]  # not recorded at all
    assert (meta.value, meta.value_text) == (None, "n/a")


def test_mount_rows_cache_counters_without_histograms():
    # A mount that counts cache writes/hits but keeps no latency histogram of them.
    before = {"juicefs_blockcache_write": 2, "juicefs_blockcache_hits": 1}
    after = {"juicefs_blockcache_write": 12, "juicefs_blockcache_hits": 4}
    rows = {r.item: r for r in mount_rows(before, after, 1)}
    assert (rows["Write into cache"].value, rows["Write into cache"].cost_text) == (10, "n/a")
    assert rows["Read from cache"].value == 3


def test_find_mount_root_plain_dir(tmp_path):
    assert find_mount_root(str(tmp_path)) == ""


# --- bad arguments: one line, non-zero exit, nothing left behind ----------------------------------


def assert_refused(r, needle: str) -> None:
    assert r.rc != 0, (r.out, r.err)
    assert "Traceback" not in r.err
    errors = [ln for ln in r.err.splitlines() if "<ERROR>" in ln]
    assert len(errors) == 1, r.err
    assert needle in errors[0], errors[0]
    assert r.out == ""


@pytest.mark.parametrize("argv,needle", [
    (["--block-size", "0"], '"--block-size"'),
    (["--block-size=-1M"], '"block-size"'),
    (["--block-size", "1X"], '"block-size"'),
    (["--big-file-size", "abc"], '"big-file-size"'),
    (["--big-file-size", "-5"], '"big-file-size"'),
    (["--small-file-size", "1..2K"], '"small-file-size"'),
    (["--small-file-count", "-3"], '"--small-file-count"'),
    (["--small-file-count", "many"], '"--small-file-count"'),
    (["-p", "0"], '"--threads"'),
    (["--threads", "x"], '"--threads"'),
    (["--big-file-size", "0", "--small-file-size", "0"], "nothing to benchmark"),
])
def test_bad_flags(cli, tmp_path, argv, needle):
    assert_refused(cli("bench", tmp_path, *argv), needle)
    assert os.listdir(tmp_path) == []


def test_missing_path(cli):
    assert_refused(cli("bench"), "PATH is required")


def test_path_not_a_directory(cli, tmp_path):
    f = tmp_path / "file"
    f.write_bytes(b"x")
    assert_refused(cli("bench", f), "is not a directory")
    assert_refused(cli("bench", tmp_path / "nope"), "no such directory")
