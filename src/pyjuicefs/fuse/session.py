"""Running a FUSE session: mount options, the trio main loop, signals, and unmounting.

The life of a mount (cli/mount.py drives it):
  pyfuse3.init() mounts  →  trio loop serves requests  →  the kernel ends the connection (the user
  ran `fusermount3 -u`/`pyjuicefs umount`, or we got SIGTERM/SIGINT/SIGHUP and unmounted lazily)
  →  pyfuse3.close() (no-op if already unmounted)  →  the caller closes the VFS (flush, session).
"""

from __future__ import annotations

import logging
import shutil
import signal
import subprocess
from collections.abc import Iterable

import pyfuse3
import trio

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
# Options JuiceFS accepts in -o but that mean nothing to libfuse 3 (it always allows non-empty
# mount points; async direct I/O is on by default).
_IGNORED = {"nonempty", "async_dio"}


def fuse_options(volume: str, extra: Iterable[str], *, is_root: bool) -> tuple[set[str], bool]:
    """(libfuse mount options, writeback_cache wanted). Always default_permissions (the kernel
    checks permissions); allow_other when root, as JuiceFS; -o items pass through, except
    writeback_cache, which is a FUSE capability rather than a mount option."""
    fsname = f"pyjuicefs:{volume}"
    opts = {"default_permissions", "subtype=pyjuicefs"}
    if is_root:
        opts.add("allow_other")
    writeback = False
    for item in extra:
        for raw in item.split(","):
            n = raw.strip()
            if not n or n in _IGNORED:
                continue
            if n in ("allow_other", "allow_root"):
                opts.add("allow_other")
            elif n == "writeback_cache":
                writeback = True
            elif n.startswith("fsname="):
                fsname = n[len("fsname="):]
            elif n.startswith("subtype="):
                opts.discard("subtype=pyjuicefs")
                opts.add(n)
            else:
                opts.add(n)
    opts.add(f"fsname={fsname}")
    return opts, writeback


def lazy_unmount(mountpoint: str) -> bool:
    """Detach the mount (fusermount3 -u -z): it disappears at once, open files keep working, and
    the kernel ends the FUSE connection when the last one closes."""
    exe = shutil.which("fusermount3") or shutil.which("fusermount")
    if exe is None:
        log.warning("fusermount3 not found: cannot unmount %s", mountpoint)
        return False
    r = subprocess.run([exe, "-u", "-z", mountpoint], capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        log.warning("unmount %s: %s", mountpoint, r.stderr.strip() or f"exit {r.returncode}")
        return False
    return True


async def _watch_signals(mountpoint: str, grace: float, nursery: trio.Nursery) -> None:
    """First signal: unmount lazily and let the loop end by itself; if it has not ended after
    `grace` seconds (files still open) or at a second signal, stop serving."""
    stopping = False
    with trio.open_signal_receiver(*STOP_SIGNALS) as signals:
        async for sig in signals:
            name = signal.Signals(sig).name
            if stopping:
                log.warning("received %s again: stop serving now", name)
                pyfuse3.terminate()
                continue
            stopping = True
            log.info("Received signal %s, exiting...", name)
            await trio.to_thread.run_sync(lazy_unmount, mountpoint)
            nursery.start_soon(_terminate_after, grace)


async def _terminate_after(grace: float) -> None:
    await trio.sleep(grace)
    log.warning("files are still open %.0fs after unmounting: stop serving", grace)
    pyfuse3.terminate()


async def _main(mountpoint: str, grace: float, max_tasks: int) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_watch_signals, mountpoint, grace, nursery)
        await pyfuse3.main(min_tasks=1, max_tasks=max_tasks)
        nursery.cancel_scope.cancel()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def serve(ops: pyfuse3.Operations, mountpoint: str, options: set[str], *, ready_message: str = "",
          grace: float = 10.0, max_tasks: int = 128) -> None:
    """Mount `ops` at `mountpoint` and serve until unmounted or signalled. Raises RuntimeError
    if libfuse cannot mount."""
    # Until trio's signal receiver takes over, SIGTERM/SIGHUP interrupt like Ctrl-C, so that the
    # `finally` below still unmounts instead of leaving a dead mount behind.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    pyfuse3.init(ops, mountpoint, options)
    try:
        if ready_message:
            log.info("%s", ready_message)
        trio.run(_main, mountpoint, grace, max_tasks)
    finally:
        # Unmounts if still mounted (e.g. the loop died); skipped when the kernel already ended
        # the connection.
        pyfuse3.close(unmount=True)
