"""`pyjuicefs umount MOUNTPOINT [-f]`: unmount a FUSE mount with fusermount3.

Minimal for now: `fusermount3 -u` (or `-u -z`, a lazy unmount, with --force). Waiting for
buffered data (--flush) and busy-mount diagnostics come with a later version.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess

from ..errors import UserError

log = logging.getLogger("pyjuicefs.cli")

HELP = """\
Unmount a volume mounted with `pyjuicefs mount` (or any FUSE mount you may unmount).
With -f/--force the mount point is detached at once even while files are open (lazy unmount);
the mount process exits once they are closed.

Examples:
  pyjuicefs umount /mnt/jfs
  pyjuicefs umount /mnt/jfs --force
"""


def register(sub: argparse._SubParsersAction) -> None:
    from .main import add_global_flags

    p = sub.add_parser("umount", help="Unmount a volume", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mountpoint", metavar="MOUNTPOINT", help="the mount point")
    p.add_argument("-f", "--force", action="store_true", help="unmount even if busy (lazy unmount)")
    add_global_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    mp = os.path.abspath(args.mountpoint)
    exe = shutil.which("fusermount3") or shutil.which("fusermount")
    if exe is None:
        raise UserError("fusermount3 is not installed (package fuse3)")
    cmd = [exe, "-u", *(["-z"] if args.force else []), mp]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        msg = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else f"exit status {r.returncode}"
        raise UserError(f"umount {mp}: {msg}")
    return 0
