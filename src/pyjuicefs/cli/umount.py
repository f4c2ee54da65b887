"""`pyjuicefs umount MOUNTPOINT [-f] [--flush]`: unmount, then wait for the mount process to exit.

Unmounting is fusermount3's (`-u`, or `-u -z`, a lazy unmount, with --force), as in JuiceFS. On
top of that: a clear error for a busy mount point (EBUSY) or one that is not mounted, and, once
unmounted, a wait until the process that served the mount has exited, since it flushes buffered
data and closes its session on the way out.

--flush first waits until the mount has no staged (writeback) blocks left to upload. It reads
the count from the mount's `.stats` file, line `juicefs_staging_blocks N` (JuiceFS's metric name;
`pyjuicefs_staging_blocks` is accepted too). If `.stats` has no such line, the mount's `.config`
is read as JuiceFS does: with "Chunk": {"Writeback": true, "CacheDir": D}, it waits until
D/rawstaging holds no data. Neither present: nothing is staged, nothing to wait for.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time

from ..errors import UserError
from .mount import mount_entry

log = logging.getLogger("pyjuicefs.cli")

HELP = """\
Unmount a volume mounted with `pyjuicefs mount` (or any FUSE mount you may unmount), then wait
until the mount process has flushed its data and exited. A busy mount point (files open on it,
a process working in it) is not unmounted; -f/--force detaches it at once anyway (lazy unmount:
the mount process exits once the files are closed). --flush waits first until the blocks staged
by --writeback are uploaded.

Examples:
  pyjuicefs umount /mnt/jfs
  pyjuicefs umount /mnt/jfs --force
  pyjuicefs umount /mnt/jfs --flush
"""

EXIT_TIMEOUT = 60.0  # seconds to wait for the mount process after a normal unmount
FORCE_EXIT_TIMEOUT = 5.0  # after a lazy unmount it may legitimately live on (files still open)
STAGING_METRICS = ("juicefs_staging_blocks", "pyjuicefs_staging_blocks")


def register(sub: argparse._SubParsersAction) -> None:
    from .main import add_global_flags

    p = sub.add_parser("umount", help="Unmount a volume", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mountpoint", metavar="MOUNTPOINT", help="the mount point")
    p.add_argument("-f", "--force", action="store_true", help="unmount a busy mount point by force (lazy unmount)")
    p.add_argument("--flush", action="store_true", help="wait for all staging chunks to be flushed")
    add_global_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    mp = os.path.abspath(args.mountpoint)
    entry = mount_entry(mp)
    if entry is None and os.path.realpath(mp) != mp:
        # Through a symlink (resolved only now: stat of a served mount point may hang).
        mp = os.path.realpath(mp)
        entry = mount_entry(mp)
    if entry is None:
        raise UserError(f"{mp} is not a mount point")
    fstype = entry[1]
    if not fstype.startswith("fuse"):
        raise UserError(f"{mp} is not a FUSE mount (it is {fstype}): use umount(8)")
    servers = server_processes(mp)
    if args.flush:
        wait_flushed(mp)
    _unmount(mp, args.force)
    if servers:
        wait_exited(mp, servers, FORCE_EXIT_TIMEOUT if args.force else EXIT_TIMEOUT, args.force)
    return 0


# --- unmounting ----------------------------------------------------------------------------------


def _unmount(mp: str, lazy: bool) -> None:
    exe = shutil.which("fusermount3") or shutil.which("fusermount")
    if exe is not None:
        cmd = [exe, "-u", *(["-z"] if lazy else []), mp]
    elif shutil.which("umount"):
        cmd = ["umount", *(["-l"] if lazy else []), mp]
    else:
        raise UserError("neither fusermount3 (package fuse3) nor umount is installed")
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        raise UserError(f"umount {mp}: {cmd[0]} did not finish in 60s (is the mount process stuck? "
                        f"try --force)") from None
    if r.returncode == 0:
        return
    err = r.stderr.strip()
    if "busy" in err.lower():
        raise UserError(f"cannot unmount {mp}: Device or resource busy: files or directories on it are in use "
                        f"(see `fuser -vm {mp}`); close them, or unmount anyway with --force")
    if mount_entry(mp) is None:  # unmounted meanwhile (by someone else): fine
        return
    msg = err.splitlines()[-1] if err else f"exit status {r.returncode}"
    raise UserError(f"cannot unmount {mp}: {msg}")


# --- the mount process ---------------------------------------------------------------------------


def _start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat (start time), or None when the process is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    rest = stat[stat.rfind(")") + 2:].split()
    if not rest or rest[0] in ("Z", "X"):
        return None
    return rest[19]


def server_processes(mp: str) -> dict[int, str]:
    """{pid: start time} of the processes serving the FUSE mount at `mp`: those holding /dev/fuse
    open whose command line names the mount point (absolute, or relative to their cwd)."""
    found: dict[int, str] = {}
    me = os.getpid()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        pid = int(name)
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            if not any(_readlink(f"/proc/{pid}/fd/{fd}") == "/dev/fuse" for fd in fds):
                continue
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
            cwd = _readlink(f"/proc/{pid}/cwd") or "/"
        except OSError:
            continue
        if any(os.path.normpath(os.path.join(cwd, a)) == mp for a in argv[1:]):
            started = _start_time(pid)
            if started is not None:
                found[pid] = started
    return found


def _readlink(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def wait_exited(mp: str, servers: dict[int, str], timeout: float, lazy: bool) -> None:
    """Wait until every process in `servers` has exited (a reused pid does not count)."""
    deadline = time.monotonic() + timeout
    while True:
        alive = [pid for pid, started in servers.items() if _start_time(pid) == started]
        if not alive:
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    pids = ", ".join(map(str, alive))
    if lazy:
        log.info("%s is detached; its mount process (pid %s) exits once the files still open on it are closed",
                 mp, pids)
        return
    raise UserError(f"{mp} is unmounted, but its mount process (pid {pids}) has not exited after {timeout:.0f}s; "
                    f"it may still be flushing data")


# --- --flush -------------------------------------------------------------------------------------


def _read_internal(mp: str, name: str, timeout: float = 10.0) -> bytes | None:
    """An internal file of the mount (`.stats`, `.config`, or their `.jfs` prefixed names), read in
    a thread so that a stuck mount cannot hang the command."""
    out: list[bytes] = []

    def read() -> None:
        for n in (name, ".jfs" + name):
            try:
                with open(os.path.join(mp, n), "rb") as f:
                    out.append(f.read())
                    return
            except OSError:
                continue

    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.join(timeout)
    return out[0] if out else None


def staging_blocks(mp: str) -> int | None:
    """The count of staged blocks the mount reports in `.stats`, None if it reports none."""
    raw = _read_internal(mp, ".stats")
    if raw is None:
        return None
    for line in raw.decode(errors="replace").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in STAGING_METRICS:
            try:
                return int(float(parts[1]))
            except ValueError:
                return None
    return None


def _staging_dir(mp: str) -> str | None:
    raw = _read_internal(mp, ".config")
    if raw is None:
        return None
    try:
        chunk = json.loads(raw).get("Chunk") or {}
    except (ValueError, AttributeError):
        return None
    if not chunk.get("Writeback") or not chunk.get("CacheDir"):
        return None
    return os.path.join(str(chunk["CacheDir"]), "rawstaging")


def _dir_bytes(path: str) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def wait_flushed(mp: str) -> None:
    """Block until nothing is staged (no timeout, as in JuiceFS: Ctrl-C gives up)."""
    count = staging_blocks(mp)
    if count is not None:
        def left() -> int | None:
            return staging_blocks(mp)
        unit = "blocks"
    else:
        sdir = _staging_dir(mp)
        if sdir is None or not os.path.isdir(sdir):
            return
        def left() -> int | None:
            return _dir_bytes(sdir) if os.path.isdir(sdir) else 0
        unit = "bytes"
    tty = sys.stderr.isatty()
    last_report = 0.0
    while True:
        n = left()
        if not n:
            break
        if tty or time.monotonic() - last_report > 10:
            print(f"\r{n} staged {unit} are being flushed...", end="" if tty else "\n", file=sys.stderr, flush=True)
            last_report = time.monotonic()
        time.sleep(1)
    if tty:
        print("\r" + " " * 60 + "\r", end="", file=sys.stderr)
    log.info("All staging chunks are flushed")
