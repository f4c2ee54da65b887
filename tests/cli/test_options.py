"""Value syntax shared by the commands, checked against what JuiceFS 1.4.2 accepts and prints."""

from __future__ import annotations

import pytest

from pyjuicefs.cli import options as opt
from pyjuicefs.cli.format import check_name, parse_block_size
from pyjuicefs.errors import UserError


@pytest.mark.parametrize("value,unit,expect", [
    ("4M", "K", 4 << 20), ("4096", "K", 4 << 20), ("4096K", "K", 4 << 20), ("64k", "K", 64 << 10),
    ("0.5M", "K", 512 << 10), ("1m", "K", 1 << 20), ("10", "G", 10 << 30), ("1.5", "G", 3 << 29),
    ("512M", "G", 512 << 20), ("1T", "G", 1 << 40), ("1B", "G", 1), ("0", "G", 0), ("1e1", "G", 10 << 30),
    ("1P", "G", 1 << 50), ("1E", "G", 1 << 60),
])
def test_parse_bytes(value, unit, expect):
    assert opt.parse_bytes(value, unit, "x") == expect


@pytest.mark.parametrize("value", ["abc", "1MiB", "1MB", "1 M", "", "-1", "1.5Gi", "inf", "nan"])
def test_parse_bytes_rejects(value):
    with pytest.raises(UserError, match='invalid value .* for "capacity"'):
        opt.parse_bytes(value, "G", "capacity")


@pytest.mark.parametrize("value,expect", [
    ("100", 100), ("100M", 100), ("1G", 1000), ("1.5G", 1500), ("1T", 1000000), ("10m", 10), ("2g", 2000),
    ("0.5", 0),
])
def test_parse_mbps(value, expect):
    assert opt.parse_mbps(value, "upload-limit") == expect


@pytest.mark.parametrize("value", ["2K", "abc", "", "1Gbps"])
def test_parse_mbps_rejects(value):
    with pytest.raises(UserError, match="upload-limit"):
        opt.parse_mbps(value, "upload-limit")


@pytest.mark.parametrize("n,text", [
    (0, "0 B"), (1, "1 B"), (102400, "100 KiB"), (512 << 20, "512 MiB"), (10 << 30, "10 GiB"),
    (3 << 29, "1.5 GiB"), (1 << 40, "1.0 TiB"), (1 << 50, "1.0 PiB"), (1 << 60, "1.0 EiB"), (1024, "1.0 KiB"),
])
def test_fmt_ibytes(n, text):
    assert opt.fmt_ibytes(n) == text


@pytest.mark.parametrize("n,text", [
    (0, "0.0 Mbps"), (5, "5.0 Mbps"), (999, "999.0 Mbps"), (1000, "1.0 Gbps"), (1500, "1.5 Gbps"),
    (12345, "12.3 Gbps"), (1000000, "1.0 Tbps"),
])
def test_fmt_mbps(n, text):
    assert opt.fmt_mbps(n) == text


def test_fmt_comma_and_duration():
    assert opt.fmt_comma(1234567) == "1,234,567"
    assert opt.fmt_duration(38.677e-6) == "38.677µs"
    assert opt.fmt_duration(0.0015) == "1.5ms"
    assert opt.fmt_duration(2.5) == "2.5s"


def test_go_time_utc(monkeypatch):
    import time

    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        assert opt.go_time(1795000208) == "2026-11-18T11:10:08Z"
        assert opt.go_time(0) == "1970-01-01T00:00:00Z"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_resolve_meta_url(monkeypatch):
    monkeypatch.delenv("META_PASSWORD", raising=False)
    assert opt.resolve_meta_url("localhost:6379/1") == "redis://localhost:6379/1"
    assert opt.resolve_meta_url("sqlite3:///tmp/a.db") == "sqlite3:///tmp/a.db"
    monkeypatch.setenv("META_PASSWORD", "p@ss")
    assert opt.resolve_meta_url("mysql://root:@(127.0.0.1:3306)/db") == "mysql://root:p%40ss@(127.0.0.1:3306)/db"
    assert opt.resolve_meta_url("postgres://u@h:5432/db") == "postgres://u:p%40ss@h:5432/db"
    # a password in the URL wins
    assert opt.resolve_meta_url("postgres://u:x@h:5432/db") == "postgres://u:x@h:5432/db"
    # redis reads META_PASSWORD in its engine; the URL is left alone
    assert opt.resolve_meta_url("redis://h:6379/1") == "redis://h:6379/1"
    with pytest.raises(UserError):
        opt.resolve_meta_url("   ")


@pytest.mark.parametrize("name", ["abc", "my-jfs", "a" * 63, "0ab", "a-1"])
def test_valid_names(name):
    check_name(name)


@pytest.mark.parametrize("name", ["ab", "My_JFS", "-abc", "abc-", "a" * 64, "ab.c", "ABC", ""])
def test_invalid_names(name):
    with pytest.raises(UserError, match="invalid name"):
        check_name(name)


@pytest.mark.parametrize("value,kib", [
    ("4M", 4096), ("4096", 4096), ("64K", 64), ("16M", 16384), ("1M", 1024), ("0.5M", 512), ("100K", 64),
    ("5M", 4096),
])
def test_block_size(value, kib):
    assert parse_block_size(value) == kib


@pytest.mark.parametrize("value", ["32K", "32M", "4194304", "1G", "0", "3K", "abc", "1MiB"])
def test_block_size_refused(value):
    with pytest.raises(UserError, match="block.size"):
        parse_block_size(value)
