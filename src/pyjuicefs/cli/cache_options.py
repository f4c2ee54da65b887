"""The mount flags of the block cache, write-back and data-path limits, with JuiceFS 1.4.2's names
and defaults: add_cache_options(parser_or_group) declares them, cache_config(args) turns them into
a CacheConfig (UserError, one line, for a bad value).

--buffer-size and --max-uploads stay with the mount command (they are VFSConfig fields).
"""

from __future__ import annotations

import argparse
import logging

from ..chunk.cache_config import CHECKSUM_LEVELS, EVICTIONS, CacheConfig, default_cache_dir
from ..chunk.limits import mbps_to_bytes
from ..errors import UserError
from . import options as opt

log = logging.getLogger("pyjuicefs.cli")

_FLAGS: list[tuple[tuple[str, ...], dict]] = [
    (("--writeback",), dict(action="store_true", help="upload blocks in background (default: false)")),
    (("--upload-delay",), dict(default="0s", help='delayed duration for uploading blocks (default: "0s")')),
    (("--upload-hours",), dict(default="", help="(start-end) hour of a day between which the delayed blocks "
                                                "can be uploaded")),
    (("--cache-dir",), dict(default=None, help="directory paths of local cache, use colon to separate multiple "
                                               'paths; "memory" keeps blocks in memory (default: "/var/jfsCache" '
                                               'as root, "~/.juicefs/cache" otherwise)')),
    (("--cache-mode",), dict(default="0600", help='file permissions for cached blocks (default: "0600")')),
    (("--cache-size",), dict(default="100G", help='size of cached object for read in MiB (default: "100G")')),
    (("--cache-items",), dict(default="0", help="max number of cached items (0 will be automatically "
                                                "calculated based on the free-space-ratio) (default: 0)")),
    (("--free-space-ratio",), dict(default="0.1", help="min free space (ratio) (default: 0.1)")),
    (("--cache-partial-only",), dict(action="store_true", help="cache only random/small read (default: false)")),
    (("--cache-large-write",), dict(action="store_true", help="cache full blocks after uploading (default: false)")),
    (("--verify-cache-checksum",), dict(default="extend", help='checksum level (none, full, shrink, extend) '
                                                               '(default: "extend")')),
    (("--cache-eviction",), dict(default="2-random", help='cache eviction policy [none, 2-random, lru] '
                                                          '(default: "2-random")')),
    (("--cache-scan-interval",), dict(default="1h", help="interval to scan cache-dir to rebuild in-memory index "
                                                         '(accepted; the cache dir is scanned once, at start)')),
    (("--cache-expire",), dict(default="0s", help="cached blocks not accessed for longer than this option will be "
                                                  'automatically evicted (0 means never) (default: "0s")')),
    (("--max-downloads",), dict(default="200", help="number of connections to download (default: 200)")),
    (("--upload-limit",), dict(default="0", help="bandwidth limit for upload in Mbps")),
    (("--download-limit",), dict(default="0", help="bandwidth limit for download in Mbps")),
    (("--max-stage-write",), dict(default="1000", help="number of threads allowed to write staged files "
                                                       "(accepted; not limited)")),
]


def add_cache_options(container: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """Declare the cache, writeback and bandwidth flags of `mount`."""
    for names, kw in _FLAGS:
        container.add_argument(*names, **kw)


def _float(value: str, flag: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise UserError(f'invalid value "{value}" for flag --{flag}: expected a number') from None


def _hours(value: str) -> tuple[int, int] | None:
    if not value:
        return None
    parts = value.split("-" if "-" in value else ",")
    try:
        start, end = (int(p) for p in parts)
    except ValueError:
        start = end = -1
    if len(parts) != 2 or not (0 <= start <= 23 and 0 <= end <= 23):
        raise UserError(f'invalid value "{value}" for flag --upload-hours: expected START-END hours (0-23), e.g. 1-6')
    return start, end


def cache_config(args: argparse.Namespace) -> CacheConfig:
    """A CacheConfig from the parsed flags."""
    from .mount import parse_duration

    raw_dir = args.cache_dir if args.cache_dir is not None else default_cache_dir()
    dirs = ["memory"] if raw_dir.strip() == "memory" else [d for d in raw_dir.split(":") if d.strip()]
    if not dirs:
        raise UserError(f'invalid value "{raw_dir}" for flag --cache-dir: no directory')
    cache_size = opt.parse_bytes(str(args.cache_size), "M", "--cache-size")
    try:
        mode = int(str(args.cache_mode), 8)
    except ValueError:
        raise UserError(f'invalid value "{args.cache_mode}" for flag --cache-mode: expected octal bits such as 0600') \
            from None
    if not 0 < mode <= 0o777:
        raise UserError(f'invalid value "{args.cache_mode}" for flag --cache-mode: expected octal bits such as 0600')
    ratio = _float(str(args.free_space_ratio), "free-space-ratio")
    if not 0 <= ratio < 1:
        raise UserError(f'invalid value "{args.free_space_ratio}" for flag --free-space-ratio: must be in [0, 1)')
    if args.cache_eviction not in EVICTIONS:
        raise UserError(f'invalid value "{args.cache_eviction}" for flag --cache-eviction: expected one of '
                        f'{", ".join(EVICTIONS)}')
    if args.verify_cache_checksum not in CHECKSUM_LEVELS:
        raise UserError(f'invalid value "{args.verify_cache_checksum}" for flag --verify-cache-checksum: expected '
                        f'one of {", ".join(CHECKSUM_LEVELS)}')
    max_downloads = opt.parse_uint(str(args.max_downloads), "max-downloads")
    if max_downloads < 1:
        raise UserError('invalid value "0" for flag --max-downloads: at least 1 download connection is needed')
    expire = parse_duration(str(args.cache_expire), "cache-expire")
    if 0 < expire < 1:
        log.warning("cache-expire is too short, setting it to 1 second")
        expire = 1.0
    parse_duration(str(args.cache_scan_interval), "cache-scan-interval")
    return CacheConfig(
        cache_dirs=dirs,
        cache_size=cache_size,
        cache_items=opt.parse_uint(str(args.cache_items), "cache-items"),
        free_space_ratio=ratio,
        cache_mode=mode,
        cache_eviction=args.cache_eviction,
        verify_checksum=args.verify_cache_checksum,
        cache_partial_only=args.cache_partial_only,
        cache_large_write=args.cache_large_write,
        cache_expire=expire,
        writeback=args.writeback,
        upload_delay=parse_duration(str(args.upload_delay), "upload-delay"),
        upload_hours=_hours(args.upload_hours or ""),
        max_downloads=max_downloads,
        upload_limit=mbps_to_bytes(opt.parse_mbps(str(args.upload_limit), "upload-limit")),
        download_limit=mbps_to_bytes(opt.parse_mbps(str(args.download_limit), "download-limit")),
    )
