"""`pyjuicefs mount META-URL MOUNTPOINT`: serve a volume through FUSE, in the foreground.

Option names and defaults are JuiceFS 1.4.2's for what exists. Everything that can fail is
checked BEFORE mounting, each failure one line and a non-zero exit: /dev/fuse, the mount point,
the volume (formatted? storage reachable?). The runtime configs (VFSConfig, MetaConfig) are built
here and nowhere else.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import re
import stat

from ..errors import UserError
from . import options as opt

log = logging.getLogger("pyjuicefs.cli")

HELP = """\
Mount the volume at the mount point and serve it in the foreground until it is unmounted
(`pyjuicefs umount MOUNTPOINT`, `fusermount3 -u MOUNTPOINT`) or the process gets SIGTERM/SIGINT;
then everything written is flushed and the session is closed.

Not supported yet: -d/--background (run it under systemd, nohup or similar), the local disk
cache (--cache-dir and --cache-size are accepted and ignored: blocks are read from the object
storage each time, with read-ahead in memory), --open-cache (accepted, always 0).

Examples:
  # Mount in foreground
  pyjuicefs mount redis://localhost /mnt/jfs

  # Mount with a sub-directory as root
  pyjuicefs mount redis://localhost /mnt/jfs --subdir /dir/in/jfs

  # Read-only, with extended attributes
  pyjuicefs mount sqlite3://myjfs.db /mnt/jfs --read-only --enable-xattr
"""

_DUR = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: str, flag: str) -> float:
    """Seconds of a Go duration ('1.5s', '100ms', '1h30m') or of a bare number of seconds, as
    JuiceFS's duration flags accept."""
    s = value.strip()
    try:
        secs = float(s)
    except ValueError:
        pos, secs = 0, 0.0
        for m in _DUR.finditer(s):
            if m.start() != pos:
                break
            secs += float(m.group(1)) * _UNIT[m.group(2)]
            pos = m.end()
        if pos != len(s) or not s:
            raise UserError(f'invalid value "{value}" for flag --{flag}: expected a duration such as 1s, 100ms, 1h')
    if secs < 0:
        raise UserError(f'invalid value "{value}" for flag --{flag}: must not be negative')
    return secs


def register(sub: argparse._SubParsersAction) -> None:
    from .main import add_global_flags

    p = sub.add_parser("mount", help="Mount a volume", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("meta_url", metavar="META-URL", help="metadata engine URL")
    p.add_argument("mountpoint", metavar="MOUNTPOINT", help="an existing, empty directory")
    p.add_argument("-d", "--background", action="store_true", help="run in background (not supported yet)")

    g = p.add_argument_group("FUSE")
    g.add_argument("--enable-xattr", action="store_true", help="enable extended attributes (xattr)")
    g.add_argument("-o", dest="fuse_opts", action="append", default=[], metavar="OPTIONS",
                   help="other FUSE options, comma separated (e.g. debug, allow_other, writeback_cache)")
    g.add_argument("--hide-internal", action="store_true",
                   help="hide the internal files (.accesslog, .stats, .config, .trash) from listings")

    g = p.add_argument_group("META")
    g.add_argument("--subdir", default="", help="mount a sub-directory as root")
    g.add_argument("--heartbeat", default="12s",
                   help="interval to send heartbeat; all clients should use the same value (default: 12s)")
    g.add_argument("--read-only", action="store_true", help="allow lookup/read operations only")
    g.add_argument("--no-bgjob", action="store_true",
                   help="disable background jobs (clean-up of stale sessions, trash, delayed deletes)")
    g.add_argument("--atime-mode", default="noatime", choices=["noatime", "relatime", "strictatime"],
                   help="when to update atime (default: noatime)")
    g.add_argument("--skip-dir-mtime", default="100ms",
                   help="skip updating the mtime of a directory if the difference is smaller (default: 100ms)")

    g = p.add_argument_group("META CACHE")
    g.add_argument("--attr-cache", default="1.0s", help="attributes cache timeout (default: 1.0s)")
    g.add_argument("--entry-cache", default="1.0s", help="file entry cache timeout (default: 1.0s)")
    g.add_argument("--dir-entry-cache", default="1.0s", help="dir entry cache timeout (default: 1.0s)")
    g.add_argument("--open-cache", default="0s", help="open file cache timeout (accepted; only 0 is supported)")

    g = p.add_argument_group("DATA STORAGE")
    g.add_argument("--storage", metavar="TYPE", help="customized storage type (e.g. s3) to access object store")
    g.add_argument("--bucket", metavar="URL", help="customized endpoint to access object store")
    g.add_argument("--access-key", metavar="KEY", help="customized access key for object storage")
    g.add_argument("--secret-key", metavar="KEY", help="customized secret key for object storage")
    g.add_argument("--get-timeout", default="60s", help="the timeout to download an object (default: 60s)")
    g.add_argument("--put-timeout", default="60s", help="the timeout to upload an object (default: 60s)")
    g.add_argument("--io-retries", default="10", help="number of retries after network failure (default: 10)")
    g.add_argument("--max-uploads", default="20", help="number of connections to upload (default: 20)")
    g.add_argument("--max-deletes", default="10", help="number of threads to delete objects (default: 10)")

    g = p.add_argument_group("DATA CACHE")
    g.add_argument("--buffer-size", default="300M", help="total read/write buffering in MiB (default: 300M)")
    g.add_argument("--max-readahead", default=None, help="max buffering for read ahead in MiB per read session")
    g.add_argument("--prefetch", default="1", help="prefetch N blocks in parallel (default: 1)")
    g.add_argument("--cache-dir", default=None,
                   help="directory paths of local cache (accepted; the disk cache comes with a later version)")
    g.add_argument("--cache-size", default=None,
                   help="size of cached object for read in MiB (accepted; no disk cache yet)")

    g = p.add_argument_group("METRICS")
    g.add_argument("--no-usage-report", action="store_true", help="do not send usage report (nothing is sent anyway)")
    add_global_flags(p)
    p.set_defaults(func=run)


# --- configuration ---------------------------------------------------------------------------------


def build_configs(args: argparse.Namespace, mountpoint: str) -> tuple[object, object, dict[str, str]]:
    """(VFSConfig, MetaConfig, storage overrides) from the flags: the one place they are built."""
    from ..meta.base_common import MetaConfig
    from ..vfs import VFSConfig

    io_retries = opt.parse_uint(args.io_retries, "io-retries")
    max_uploads = opt.parse_uint(args.max_uploads, "max-uploads")
    if max_uploads < 1:
        raise UserError('invalid value "0" for flag --max-uploads: at least 1 upload connection is needed')
    buffer_size = opt.parse_bytes(args.buffer_size, "M", "--buffer-size")
    if buffer_size < (32 << 20):
        # JuiceFS raises a too small buffer to 32 MiB with a warning.
        log.warning("buffer-size is too small, setting it to 32 MiB")
        buffer_size = 32 << 20
    max_readahead = 0 if args.max_readahead is None else opt.parse_bytes(args.max_readahead, "M", "--max-readahead")
    if args.open_cache and parse_duration(args.open_cache, "open-cache") > 0:
        log.warning("--open-cache is not supported yet: files are always re-validated at open")
    if args.cache_dir is not None or args.cache_size is not None:
        log.info("--cache-dir/--cache-size: the local disk cache is not implemented yet; "
                 "reads go to the object storage")
    vconf = VFSConfig(
        attr_timeout=parse_duration(args.attr_cache, "attr-cache"),
        entry_timeout=parse_duration(args.entry_cache, "entry-cache"),
        dir_entry_timeout=parse_duration(args.dir_entry_cache, "dir-entry-cache"),
        max_uploads=max_uploads,
        buffer_size=buffer_size,
        prefetch=opt.parse_uint(args.prefetch, "prefetch"),
        max_readahead=max_readahead,
        read_only=args.read_only,
        enable_xattr=args.enable_xattr,
        get_timeout=parse_duration(args.get_timeout, "get-timeout"),
        put_timeout=parse_duration(args.put_timeout, "put-timeout"),
        io_retries=io_retries,
        hide_internal=args.hide_internal,
    )
    mconf = MetaConfig(
        retries=io_retries,
        heartbeat=parse_duration(args.heartbeat, "heartbeat") or 12.0,
        read_only=args.read_only,
        subdir=args.subdir.strip("/"),
        atime_mode=args.atime_mode,
        max_deletes=opt.parse_uint(args.max_deletes, "max-deletes"),
        mount_point=mountpoint,
        skip_dir_mtime=parse_duration(args.skip_dir_mtime, "skip-dir-mtime"),
    )
    if args.no_bgjob:
        # The VFS runs the heartbeat and the clean-ups in one thread; only the heartbeat is vital.
        log.info("--no-bgjob: background clean-up jobs are not separable yet; they keep running")
    overrides = {k: getattr(args, k) for k in ("storage", "bucket", "access_key", "secret_key")
                 if getattr(args, k) is not None}
    return vconf, mconf, overrides


# --- checks before mounting ------------------------------------------------------------------------


def check_fuse_device() -> None:
    # Only looked at, never opened or created (libfuse opens it when mounting).
    if not os.path.exists("/dev/fuse"):
        raise UserError("/dev/fuse does not exist: the kernel has no FUSE support here (load the fuse module, "
                        "or give the container --device /dev/fuse)")


def check_mountpoint(path: str) -> str:
    """The absolute mount point, if it is an existing directory that is not already a mount point."""
    mp = os.path.abspath(path)
    try:
        st = os.stat(mp)
    except FileNotFoundError:
        raise UserError(f"mount point {mp} does not exist: create it first (mkdir -p {mp})") from None
    except OSError as e:
        if e.errno == errno.ENOTCONN:
            raise UserError(f"mount point {mp} is a dead mount (transport endpoint is not connected): "
                            f"unmount it first (fusermount3 -u {mp})") from None
        raise UserError(f"mount point {mp}: {e.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise UserError(f"mount point {mp} is not a directory")
    if os.path.ismount(mp):
        raise UserError(f"{mp} is already a mount point: unmount it first or choose another directory")
    return mp


# --- run -------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    if args.background:
        raise UserError("-d/--background is not supported yet: run `pyjuicefs mount` in the foreground "
                        "(e.g. under systemd or nohup)")
    check_fuse_device()
    mp = check_mountpoint(args.mountpoint)
    vconf, mconf, overrides = build_configs(args, mp)
    try:
        from .. import fuse as jfuse
    except ImportError as e:
        raise UserError(f"FUSE support is not installed ({e}): pip install 'pyjuicefs[fuse]'") from None
    from ..vfs import open_volume

    meta_url = opt.resolve_meta_url(args.meta_url)
    log.info("Meta address: %s", opt.redact(meta_url))
    vfs = open_volume(meta_url, vfs_conf=vconf, meta_conf=mconf, storage_overrides=overrides or None)
    try:
        name = vfs.meta.get_format().Name
        options, writeback = jfuse.fuse_options(name, args.fuse_opts, is_root=os.getuid() == 0)
        ops = jfuse.FuseOps(vfs, enable_xattr=vconf.enable_xattr, writeback_cache=writeback)
        log.info("Mounting volume %s at %s ...", name, mp)
        try:
            jfuse.serve(ops, mp, options, ready_message=f"OK, {name} is ready at {mp}")
        except RuntimeError as e:
            raise UserError(f"fuse: cannot mount {name} at {mp}: {e} (see the lines above)") from None
        except KeyboardInterrupt:
            log.info("interrupted, %s is unmounted", mp)
    finally:
        vfs.close()
    log.info("%s is unmounted", mp)
    return 0
