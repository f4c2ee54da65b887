"""`pyjuicefs mount META-URL MOUNTPOINT [-d]`: serve a volume through FUSE.

Option names and defaults are JuiceFS 1.4.2's for what exists. Everything that can fail is
checked BEFORE mounting, each failure one line and a non-zero exit: /dev/fuse, the mount point,
the volume (formatted? storage reachable?). The runtime configs (VFSConfig, MetaConfig) are built
here and nowhere else.

With -d the command checks the flags and the mount point, then starts the daemon: the same
command without -d, in a new session, in /, its output appended to --log. It returns 0 once
/proc/self/mounts shows a fuse.pyjuicefs mount there whose root answers (inode 1). A failure
in the daemon (volume not formatted, storage unreachable, libfuse refusing) is written by the
daemon as one line to a pipe (fd in PYJUICEFS_DAEMON_STATUS_FD) and becomes the parent's error.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import re
import select
import stat
import subprocess
import sys
import threading
import time

from ..errors import UserError
from . import fstab
from . import options as opt
from .cache_options import add_cache_options, cache_config

log = logging.getLogger("pyjuicefs.cli")

HELP = """\
Mount the volume at the mount point. In the foreground (the default) it serves until it is
unmounted (`pyjuicefs umount MOUNTPOINT`, `fusermount3 -u MOUNTPOINT`) or the process gets
SIGTERM/SIGINT; then everything written is flushed and the session is closed. With -d the
command returns once the mount is ready (or prints why it failed) and a daemon serves it,
logging to --log.

Not supported yet: --open-cache (accepted, always 0).

Examples:
  # Mount in foreground
  pyjuicefs mount redis://localhost /mnt/jfs

  # Mount in background, and at boot (an /etc/fstab line and /sbin/mount.pyjuicefs)
  pyjuicefs mount redis://localhost /mnt/jfs -d --update-fstab

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
    p.add_argument("-d", "--background", action="store_true",
                   help="run in background: return once the mount is ready, then a daemon serves it")
    p.add_argument("--log", metavar="PATH", default=None,
                   help="log file of the background daemon (default: /var/log/pyjuicefs.log as root, "
                        "~/.pyjuicefs/pyjuicefs.log otherwise)")
    p.add_argument("--update-fstab", action="store_true",
                   help="add or update the line of this mount point in /etc/fstab and install "
                        "/sbin/mount.pyjuicefs, so that `mount MOUNTPOINT` and systemd mount it "
                        "(PYJUICEFS_FSTAB and PYJUICEFS_SBIN point elsewhere)")

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
    g.add_argument("--max-readahead", default=None, help="max buffering for read ahead in MiB per read session; 0 disables it (default: automatic)")
    g.add_argument("--prefetch", default="1", help="prefetch N blocks in parallel (default: 1)")
    add_cache_options(g)

    g = p.add_argument_group("METRICS")
    g.add_argument("--metrics", metavar="ADDR", default=None,
                   help='address to export metrics (default: "127.0.0.1:9567"; when busy, a free port)')
    g.add_argument("--custom-labels", metavar="LABELS", default=None,
                   help='custom labels for metrics, e.g. "team:storage;zone:a"')
    g.add_argument("--no-usage-report", action="store_true", help="do not send usage report (nothing is sent anyway)")
    add_global_flags(p)
    # The parser itself goes along: -d re-runs the command and --update-fstab writes the flags given.
    p.set_defaults(func=run, mount_parser=p)


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
    # VFSConfig: 0 = automatic, < 0 = off; JuiceFS's --max-readahead 0 turns readahead off.
    max_readahead = 0 if args.max_readahead is None else opt.parse_bytes(args.max_readahead, "M", "--max-readahead")
    if args.max_readahead is not None and max_readahead == 0:
        max_readahead = -1
    if args.open_cache and parse_duration(args.open_cache, "open-cache") > 0:
        log.warning("--open-cache is not supported yet: files are always re-validated at open")
    # `-o ro` (what mount(8) passes for `mount -r`) also makes the client read-only, as in JuiceFS.
    read_only = args.read_only or "ro" in fuse_option_items(args.fuse_opts)
    vconf = VFSConfig(
        attr_timeout=parse_duration(args.attr_cache, "attr-cache"),
        entry_timeout=parse_duration(args.entry_cache, "entry-cache"),
        dir_entry_timeout=parse_duration(args.dir_entry_cache, "dir-entry-cache"),
        max_uploads=max_uploads,
        buffer_size=buffer_size,
        prefetch=opt.parse_uint(args.prefetch, "prefetch"),
        max_readahead=max_readahead,
        read_only=read_only,
        enable_xattr=args.enable_xattr,
        get_timeout=parse_duration(args.get_timeout, "get-timeout"),
        put_timeout=parse_duration(args.put_timeout, "put-timeout"),
        io_retries=io_retries,
        hide_internal=args.hide_internal,
    )
    vconf.cache = cache_config(args)
    mconf = MetaConfig(
        retries=io_retries,
        heartbeat=parse_duration(args.heartbeat, "heartbeat") or 12.0,
        read_only=read_only,
        subdir=args.subdir.strip("/"),
        atime_mode=args.atime_mode,
        max_deletes=opt.parse_uint(args.max_deletes, "max-deletes"),
        mount_point=mountpoint,
        skip_dir_mtime=parse_duration(args.skip_dir_mtime, "skip-dir-mtime"),
    )
    vconf.no_bgjob = args.no_bgjob  # the heartbeat still runs; clean-ups do not
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


# --- background: the parent starts a daemon and waits until the mount works ------------------------

STATUS_FD_ENV = "PYJUICEFS_DAEMON_STATUS_FD"  # set only in the daemon: the pipe to report a failure on
MOUNT_TIMEOUT_ENV = "PYJUICEFS_MOUNT_TIMEOUT"  # seconds the parent waits for the mount (JFS_MOUNT_TIMEOUT)
DEFAULT_MOUNT_TIMEOUT = 30.0
FSTYPE = "fuse.pyjuicefs"
# Flags of the parent that the daemon (a foreground mount) must not see again.
_PARENT_ONLY = {"background", "log", "update_fstab", "mount_parser", "func", "command"}


class StatusPipe:
    """The daemon's end of the pipe to the parent. Only failures are written ("ERR <line>"); the
    parent sees success in /proc/self/mounts, and EOF without a line when the daemon died."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    @classmethod
    def from_env(cls) -> StatusPipe | None:
        raw = os.environ.pop(STATUS_FD_ENV, "")
        if not raw.isdigit():
            return None
        fd = int(raw)
        try:
            os.set_inheritable(fd, False)  # not for fusermount3 or other children
        except OSError:
            return None
        return cls(fd)

    def fail(self, message: str) -> None:
        if self.fd < 0:
            return
        try:
            os.write(self.fd, ("ERR " + " ".join(message.split()) + "\n").encode())
        except OSError:
            pass  # the parent is gone (it timed out): the log has the line anyway
        finally:
            os.close(self.fd)
            self.fd = -1


def default_log_path() -> str:
    if os.getuid() == 0:
        return "/var/log/pyjuicefs.log"
    return os.path.join(os.path.expanduser("~"), ".pyjuicefs", "pyjuicefs.log")


def daemon_argv(args: argparse.Namespace, parser: argparse.ArgumentParser, mp: str) -> list[str]:
    """`python -m pyjuicefs mount` with the flags the user gave, minus the parent-only ones; paths
    absolute (the daemon runs in /)."""
    argv = [sys.executable, "-m", "pyjuicefs", "mount"]
    for action, value in fstab.given_options(parser, args):
        if action.dest in _PARENT_ONLY:
            continue
        flag = fstab.long_flag(action)
        if action.dest == "cache_dir" and isinstance(value, str) and value != "memory":
            value = ":".join(os.path.abspath(os.path.expanduser(d)) for d in value.split(":") if d)
        if value is True:
            argv.append(flag)
        elif isinstance(value, list):
            for v in value:
                argv += [flag, str(v)]
        else:
            argv.append(f"{flag}={value}")
    return argv + [fstab.absolute_meta_url(args.meta_url), mp]


def mount_entry(mp: str) -> tuple[str, str] | None:
    """(source, fs type) of the topmost mount at `mp`, from /proc/self/mounts (never stats `mp`)."""
    target = mp.replace("\\", "\\134").replace(" ", "\\040").replace("\t", "\\011").replace("\n", "\\012")
    found = None
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                fields = line.split(" ")
                if len(fields) >= 3 and fields[1] == target:
                    found = (fields[0], fields[2])
    except OSError:
        return None
    return found


def _root_inode(mp: str, timeout: float) -> int | None:
    """st_ino of `mp`, or None if stat fails or does not answer in time (a stuck server)."""
    out: list[int] = []

    def probe() -> None:
        try:
            out.append(os.stat(mp).st_ino)
        except OSError:
            pass

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout)
    return out[0] if out else None


def start_daemon(args: argparse.Namespace, parser: argparse.ArgumentParser, mp: str) -> str:
    """Start the daemon and return the volume name once `mp` serves it; UserError with the
    daemon's own error line if it fails, or after PYJUICEFS_MOUNT_TIMEOUT seconds."""
    log_path = os.path.abspath(os.path.expanduser(args.log or default_log_path()))
    try:
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        logf = open(log_path, "ab")
        log_start = logf.seek(0, os.SEEK_END)  # this daemon's lines start here
    except OSError as e:
        raise UserError(f"cannot open the log file {log_path}: {e.strerror or e}") from None
    try:
        timeout = float(os.environ.get(MOUNT_TIMEOUT_ENV) or DEFAULT_MOUNT_TIMEOUT)
    except ValueError:
        raise UserError(f"invalid {MOUNT_TIMEOUT_ENV}={os.environ[MOUNT_TIMEOUT_ENV]!r}: expected seconds") from None
    argv = daemon_argv(args, parser, mp)
    rfd, wfd = os.pipe()
    try:
        with logf:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, cwd="/",
                                    start_new_session=True, pass_fds=(wfd,),
                                    env={**os.environ, STATUS_FD_ENV: str(wfd)})
    except OSError as e:
        os.close(rfd)
        raise UserError(f"cannot start the mount daemon: {e}") from None
    finally:
        os.close(wfd)
    log.debug("mount daemon pid %d, log %s", proc.pid, log_path)
    try:
        return _wait_ready(proc, rfd, mp, (log_path, log_start), timeout)
    finally:
        os.close(rfd)


def _wait_ready(proc: subprocess.Popen, rfd: int, mp: str, logpos: tuple[str, int], timeout: float) -> str:
    log_path = logpos[0]
    deadline = time.monotonic() + timeout
    buf = b""
    while True:
        entry = mount_entry(mp)
        if entry is not None and entry[1] == FSTYPE and _root_inode(mp, 5.0) == 1:
            source = entry[0]
            return source.split(":", 1)[1] if source.startswith("pyjuicefs:") else source
        if time.monotonic() > deadline:
            break
        readable, _, _ = select.select([rfd], [], [], 0.1)
        if not readable:
            continue
        chunk = os.read(rfd, 4096)
        buf += chunk
        if b"\n" in buf or not chunk:  # a failure line, or the daemon exited without one
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            line = buf.decode(errors="replace").strip()
            if line.startswith("ERR "):
                raise UserError(line[4:].replace("see the lines above", f"see the log {log_path}"))
            raise UserError(f"the mount daemon exited with status {proc.poll()} before {mp} was mounted: "
                            f"{_last_error(*logpos)} (log: {log_path})")
    # Not ready in time: stop the daemon rather than leave a mount the user was told failed.
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
    raise UserError(f"the mount point {mp} is not ready in {timeout:.0f} seconds; see the log ({log_path}) "
                    f"or mount in the foreground")


def _last_error(log_path: str, start: int) -> str:
    """The last error line the daemon logged (its lines begin at offset `start`)."""
    try:
        with open(log_path, "rb") as f:
            end = f.seek(0, os.SEEK_END)
            f.seek(max(start, end - 16384))
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return "no log"
    errors = [ln for ln in lines if "<ERROR>" in ln or "<FATAL>" in ln or "Error" in ln]
    return (errors or lines or ["no output"])[-1].strip()


# --- metrics ---------------------------------------------------------------------------------------


def metrics_options(args: argparse.Namespace) -> tuple[str, dict[str, str]]:
    """(--metrics address, --custom-labels), checked before mounting (one line each if wrong)."""
    from .. import metrics

    addr = args.metrics if args.metrics is not None else metrics.DEFAULT_ADDR
    metrics.parse_address(addr)
    return addr, metrics.parse_custom_labels(args.custom_labels)


def serve_metrics(vfs, mp: str, name: str, addr: str, explicit: bool, labels: dict[str, str]):
    """The Prometheus endpoint of this mount (None if it could not listen: mounting goes on)."""
    from .. import JUICEFS_COMPAT_VERSION, __version__, metrics

    stats = vfs.stats
    stats.attach(vfs)
    const = metrics.common_labels(mp, name, f"{JUICEFS_COMPAT_VERSION}+pyjuicefs-{__version__}", labels)
    return metrics.serve(addr, explicit, lambda: stats.exposition(const))


# --- run -------------------------------------------------------------------------------------------


def fuse_option_items(values: list[str]) -> list[str]:
    """The -o values as one list of items (each -o may hold several, comma separated)."""
    return [item.strip() for v in values for item in v.split(",") if item.strip()]


def run(args: argparse.Namespace) -> int:
    status = StatusPipe.from_env()  # set when this process is the daemon of `mount -d`
    try:
        return _run(args)
    except UserError as e:
        if status:
            status.fail(str(e))
        raise
    except KeyboardInterrupt:
        if status:
            status.fail("the mount daemon was interrupted")
        raise
    except Exception as e:
        if status:
            status.fail(f"unexpected error: {type(e).__name__}: {e}")
        raise


def _run(args: argparse.Namespace) -> int:
    check_fuse_device()
    mp = check_mountpoint(args.mountpoint)
    vconf, mconf, overrides = build_configs(args, mp)
    metrics_addr, custom_labels = metrics_options(args)
    if args.background:
        # Everything below (opening the volume, mounting) runs in the daemon; it reports a failure
        # back through a pipe, so the user still gets the one line saying why.
        mp = os.path.realpath(mp)  # as /proc/self/mounts will show it (safe: not mounted yet)
        name = start_daemon(args, args.mount_parser, mp)
        if args.update_fstab:
            fstab.update_from_args(args, args.mount_parser, mp)
        log.info("OK, %s is ready at %s", name, mp)
        return 0
    try:
        from .. import fuse as jfuse
    except ImportError as e:
        raise UserError(f"FUSE support is not installed ({e}): pip install 'pyjuicefs[fuse]'") from None
    from ..vfs import open_volume

    meta_url = opt.resolve_meta_url(args.meta_url)
    log.info("Meta address: %s", opt.redact(meta_url))
    vfs = open_volume(meta_url, vfs_conf=vconf, meta_conf=mconf, storage_overrides=overrides or None)
    server = None
    try:
        name = vfs.meta.get_format().Name
        server = serve_metrics(vfs, mp, name, metrics_addr, args.metrics is not None, custom_labels)
        options, writeback = jfuse.fuse_options(name, args.fuse_opts, is_root=os.getuid() == 0)
        ops = jfuse.FuseOps(vfs, enable_xattr=vconf.enable_xattr, writeback_cache=writeback)
        if args.update_fstab:
            fstab.update_from_args(args, args.mount_parser, mp)
        log.info("Mounting volume %s at %s ...", name, mp)
        try:
            jfuse.serve(ops, mp, options, ready_message=f"OK, {name} is ready at {mp}")
        except RuntimeError as e:
            raise UserError(f"fuse: cannot mount {name} at {mp}: {e} (see the lines above)") from None
        except KeyboardInterrupt:
            log.info("interrupted, %s is unmounted", mp)
    finally:
        if server is not None:
            server.close()
        vfs.close()
    log.info("%s is unmounted", mp)
    return 0
