"""Option groups and helpers shared by the volume commands (format, config, status, mount…).

Flag names, defaults and value syntax follow JuiceFS 1.4.2 (`juicefs <command> --help`): sizes such
as `4M`, `64K` or `1.5G` (a bare number takes the flag's default unit), bandwidths in Mbps with an
optional M/G/T suffix, and META-URL without a scheme meaning Redis.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import logging
import os
import re
import sys
from typing import Any
from urllib.parse import quote

from ..errors import NotFormatted, UserError
from ..format import Format

log = logging.getLogger("pyjuicefs.cli")

# --- value parsing ----------------------------------------------------------------------------

_SHIFTS = {"B": 0, "K": 10, "M": 20, "G": 30, "T": 40, "P": 50, "E": 60}
# What Go's strconv.ParseFloat accepts for the plain decimal numbers people type.
_NUMBER = re.compile(r"^[+]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")


def parse_bytes(value: str, default_unit: str, flag: str) -> int:
    """Bytes of a size such as '4M', '512K', '1.5G', '100' (in default_unit), like JuiceFS's
    ParseBytes: one unit letter B/K/M/G/T/P/E (any case, powers of 1024), no 'iB' suffixes."""
    s = value
    unit = default_unit.upper()
    if s and s[-1].upper() in _SHIFTS:
        unit, s = s[-1].upper(), s[:-1]
    if not _NUMBER.match(s):
        raise UserError(f'invalid value "{value}" for "{flag}": expected a number with an optional unit '
                        f"K, M, G, T, P or E (e.g. 4M)")
    return int(float(s) * (1 << _SHIFTS[unit]))


def parse_mbps(value: str, flag: str) -> int:
    """Mbps of a bandwidth such as '100', '100M', '1.5G' or '1T' (decimal units, truncated)."""
    s, mult = value, 1
    if s and s[-1].upper() in ("M", "G", "T"):
        mult = {"M": 1, "G": 1000, "T": 1000_000}[s[-1].upper()]
        s = s[:-1]
    if not _NUMBER.match(s):
        raise UserError(f'invalid value "{value}" for "{flag}": expected Mbps, optionally with M, G or T')
    return int(float(s) * mult)


def parse_uint(value: str, flag: str) -> int:
    try:
        n = int(value, 10)
    except ValueError:
        n = -1
    if n < 0:
        raise UserError(f'invalid value "{value}" for flag --{flag}: expected a non-negative integer')
    return n


def parse_int(value: str, flag: str) -> int:
    try:
        return int(value, 10)
    except ValueError:
        raise UserError(f'invalid value "{value}" for flag --{flag}: expected an integer') from None


# --- value formatting (go-humanize, as JuiceFS prints them) ---------------------------------


def fmt_ibytes(n: int) -> str:
    """'0 B', '512 MiB', '1.5 GiB', '1.0 TiB' (go-humanize IBytes)."""
    if n < 10:
        return f"{n} B"
    units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
    e = 0
    while e + 1 < len(units) and n >= 1024 ** (e + 1):
        e += 1
    val = int(n / 1024**e * 10 + 0.5) / 10
    return f"{val:.1f} {units[e]}" if val < 10 else f"{val:.0f} {units[e]}"


def fmt_mbps(n: int) -> str:
    """'100.0 Mbps', '1.5 Gbps', '1.0 Tbps' (JuiceFS utils.Mbps)."""
    if n < 1000:
        return f"{float(n):.1f} Mbps"
    if n < 1000_000:
        return f"{n / 1000:.1f} Gbps"
    return f"{n / 1000_000:.1f} Tbps"


def fmt_comma(n: int) -> str:
    return f"{n:,}"


def fmt_duration(seconds: float) -> str:
    """A Go-style duration for logs: '38.677µs', '1.2ms', '2.5s'."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.3f}".rstrip("0").rstrip(".") + "µs"
    if seconds < 1:
        return f"{seconds * 1e3:.6f}".rstrip("0").rstrip(".") + "ms"
    return f"{seconds:.6f}".rstrip("0").rstrip(".") + "s"


def go_time(ts: float) -> str:
    """Unix seconds as Go marshals a time.Time in local time: '2026-11-25T11:50:08Z' / '+08:00'."""
    s = _dt.datetime.fromtimestamp(int(ts)).astimezone().isoformat()
    return s[:-6] + "Z" if s.endswith("+00:00") else s


# --- option groups ------------------------------------------------------------------------------


def add_storage_flags(p: argparse.ArgumentParser) -> None:
    """DATA STORAGE flags of format and config. Every default is None so that a command can tell
    which flags were given (config changes only those; format updates only those)."""
    g = p.add_argument_group("data storage")
    g.add_argument("--storage", metavar="TYPE", help='object storage type, e.g. s3 (default: "file")')
    g.add_argument("--bucket", metavar="URL",
                   help="the bucket URL of object storage to store data (default: /var/jfs as root, "
                        "~/.juicefs/local otherwise)")
    g.add_argument("--access-key", metavar="KEY", help="access key for object storage (env ACCESS_KEY)")
    g.add_argument("--secret-key", metavar="KEY", help="secret key for object storage (env SECRET_KEY)")
    g.add_argument("--session-token", metavar="TOKEN",
                   help="session token for object storage (env SESSION_TOKEN)")
    g.add_argument("--storage-class", metavar="CLASS", help="the default storage class")


def add_management_flags(p: argparse.ArgumentParser) -> None:
    """MANAGEMENT flags shared by format and config."""
    g = p.add_argument_group("management")
    g.add_argument("--capacity", metavar="SIZE",
                   help="hard quota of the volume limiting its usage of space in GiB (units K/M/G/T accepted)")
    g.add_argument("--inodes", metavar="N", help="hard quota of the volume limiting its number of inodes")
    g.add_argument("--trash-days", metavar="DAYS",
                   help="number of days after which removed files will be permanently deleted (default: 1)")


def given(args: argparse.Namespace, *names: str) -> list[str]:
    """The flags (dest names) the user gave, in JuiceFS's order (sorted by flag name)."""
    out = [n for n in names if getattr(args, n, None) is not None]
    return sorted(out, key=lambda n: n.replace("_", "-"))


# --- metadata engine -----------------------------------------------------------------------------


def resolve_meta_url(url: str) -> str:
    """META-URL as JuiceFS reads it: 'redis://' when the scheme is missing, and META_PASSWORD put
    into a MySQL/PostgreSQL URL that names a user without a password."""
    url = url.strip()
    if not url:
        raise UserError("META-URL is empty")
    if "://" not in url:
        url = "redis://" + url
    scheme = url.split("://", 1)[0].lower()
    pw = os.environ.get("META_PASSWORD", "")
    if pw and scheme in ("mysql", "postgres"):
        start = url.index("://") + 3
        at = url.find("@", start)
        if at < 0:
            raise UserError(f"invalid metadata URL {redact(url)}: META_PASSWORD is set but the URL has no user@")
        cred = url[start:at].split(":")
        if len(cred) > 2:
            raise UserError(f"invalid metadata URL {redact(url)}")
        if len(cred) == 1 or not cred[1]:
            url = url[:start] + cred[0] + ":" + quote(pw, safe="") + url[at:]
    return url


def redact(url: str) -> str:
    from ..meta import redact_url

    return redact_url(url)


def _scrub(msg: str, url: str) -> str:
    """Remove the password of url from an error message (drivers like to echo their DSN)."""
    start = url.find("://") + 3
    at = url.rfind("@")
    if 3 <= start < at:
        cred = url[start:at]
        if ":" in cred:
            pw = cred.split(":", 1)[1]
            if pw:
                msg = msg.replace(pw, "****")
    return msg


def open_engine(url: str, *, log_ping: bool = True) -> Any:
    """Connect to the metadata engine as JuiceFS's NewClient does: log the (redacted) address,
    ping it, log its warnings. Any failure becomes one clear UserError line."""
    from ..meta import new_engine

    url = resolve_meta_url(url)
    log.info("Meta address: %s", redact(url))
    try:
        engine = new_engine(url)
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - a driver's own parse errors: one line
        raise UserError(f"Meta {redact(url)} is not available: {_scrub(str(e), url)}") from None
    try:
        latency = engine.ping()
        if log_ping:
            log.info("Ping %s latency: %s", engine.name or url.split("://")[0], fmt_duration(latency))
        for w in engine.warnings():
            log.warning("%s", w)
    except BaseException as e:
        _close(engine)
        if isinstance(e, UserError):
            raise UserError(_scrub(str(e), url), e.exit_code) from None
        if isinstance(e, Exception):
            raise UserError(f"cannot connect to metadata engine {redact(url)}: {_scrub(str(e), url) or type(e).__name__}") from None
        raise
    return engine


def _close(engine: Any) -> None:
    try:
        engine.close()
    except Exception:  # noqa: BLE001 - closing after a failure must not hide it
        pass


def load_format(engine: Any, *, check_version: bool) -> Format:
    """The volume's settings (secrets still encrypted), or NotFormatted."""
    raw = engine.load_setting()
    if raw is None:
        raise NotFormatted("database is not formatted, please run `pyjuicefs format ...` first")
    fmt = Format.from_json(raw)
    if check_version:
        fmt.check_version()
    return fmt


def new_meta(engine: Any) -> Any:
    """The metadata API over an engine (for init/statfs rules that live in one place)."""
    from ..meta.base import Meta, MetaConfig

    return Meta(engine, MetaConfig())


# --- interaction ---------------------------------------------------------------------------------


def warn(msg: str) -> None:
    """JuiceFS's confirmation warning, on stdout (colored on a terminal)."""
    tag = "\033[1;33mWARNING\033[0m" if sys.stdout.isatty() else "WARNING"
    print(f"{tag}: {msg}", flush=True)


def confirmed() -> bool:
    """Ask 'Proceed anyway? [y/N]' on stdin; a closed or non-interactive stdin answers no."""
    print("Proceed anyway? [y/N]: ", end="", flush=True)
    while True:
        line = sys.stdin.readline() if sys.stdin else ""
        if not line:
            print()
            log.warning("no answer on stdin: treated as no (pass --yes to confirm non-interactively)")
            return False
        text = line.strip().lower()
        if text in ("y", "yes"):
            return True
        if text in ("", "n", "no"):
            return False
        print("Please input y(yes) or n(no): ", end="", flush=True)


__all__ = [
    "parse_bytes", "parse_mbps", "parse_uint", "parse_int", "fmt_ibytes", "fmt_mbps",
    "fmt_comma", "fmt_duration", "go_time", "add_storage_flags", "add_management_flags", "given",
    "resolve_meta_url", "open_engine", "load_format", "new_meta", "warn", "confirmed",
]
