"""`pyjuicefs status META-URL`: the volume's settings, its client sessions and usage, as JSON.

The shape is what JuiceFS 1.4.2 prints: {"Setting": {...secrets "removed"...}, "Sessions": [...],
"Stat": {"UsedSpace", "AvailableSpace", "UsedInodes", "AvailableInodes", ...}}; with --session SID
only that session, with its sustained inodes and locks.
"""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

from ..errors import UserError
from ..format import Format
from ..meta.base_common import volume_statfs
from ..meta.types import TRASH_INODE, TYPE_DIRECTORY, TYPE_FILE
from . import options as opt

log = logging.getLogger("pyjuicefs.cli")

HELP = """\
Show the settings of a volume and the active sessions (mounts, SDK clients, gateways, WebDAV
servers) connected to its metadata engine. Read-only sessions are not listed: they do not
register themselves.

Example:
  pyjuicefs status redis://localhost
"""


def register(sub: argparse._SubParsersAction) -> None:
    from .main import add_global_flags

    p = sub.add_parser("status", help="Show status of a volume", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("meta_url", metavar="META-URL", help="metadata engine URL")
    p.add_argument("-s", "--session", metavar="SID", type=int, default=0,
                   help="show detailed information (sustained inodes, locks) of the specified session (sid)")
    p.add_argument("-m", "--more", action="store_true",
                   help="show more statistic information, may take a long time")
    add_global_flags(p)
    p.set_defaults(func=run)


def print_json(v: Any) -> None:
    """Indented two spaces, with <, > and & escaped as Go's encoding/json does."""
    text = json.dumps(v, indent=2, ensure_ascii=False)
    print(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def run(args: argparse.Namespace) -> int:
    if args.session < 0:
        raise UserError(f"invalid session id: {args.session}")
    engine = opt.open_engine(args.meta_url)
    try:
        try:
            fmt = opt.load_format(engine, check_version=True)
        except UserError as e:
            raise UserError(f"load setting: {e}", e.exit_code) from None
        if args.session:
            print_json(session_detail(engine, args.session))
            return 0
        out = {"Setting": fmt.redacted().to_dict(), "Sessions": list_sessions(engine), "Stat": statistic(engine, fmt)}
        if args.more:
            out["Stat"].update(more_statistic(engine))
        print_json(out)
        return 0
    finally:
        opt._close(engine)


# --- sessions --------------------------------------------------------------------------------------

_INFO_KEYS = ("Version", "HostName", "IPAddrs", "MountPoint", "MountTime", "ProcessID")


def session_json(sid: int, expire: float, info: bytes) -> dict[str, Any]:
    """One session as JuiceFS marshals meta.Session: Sid, Expire, then the SessionInfo fields."""
    try:
        d = json.loads(info) if info else {}
    except ValueError:
        d = {}
    if not isinstance(d, dict):
        d = {}
    out: dict[str, Any] = {"Sid": sid, "Expire": opt.go_time(expire)}
    for k in _INFO_KEYS:
        v = d.get(k)
        if k == "IPAddrs":
            if v:
                out[k] = v
            continue
        if v is None:
            v = {"ProcessID": 0, "MountTime": "0001-01-01T00:00:00Z"}.get(k, "")
        out[k] = v
    return out


def list_sessions(engine: Any) -> list[dict[str, Any]]:
    return [session_json(s.sid, s.expire, s.info) for s in sorted(engine.list_sessions(), key=lambda s: s.sid)]


def session_detail(engine: Any, sid: int) -> dict[str, Any]:
    """A session with its sustained inodes, flocks and plocks (JuiceFS GetSession(sid, true))."""
    from ..meta.codec import decode_plock_records

    recs = [s for s in engine.list_sessions() if s.sid == sid]
    if not recs:
        raise UserError(f"get session: session not found: {sid}")
    s = recs[0]
    out = session_json(s.sid, s.expire, s.info)
    sustained = engine.get_sustained(sid)
    if sustained:
        out["Sustained"] = sorted(sustained)
    finos, pinos = engine.list_session_locks(sid)
    flocks, plocks = [], []
    for ino in sorted(set(finos)):
        locks = engine.txn(lambda tx, i=ino: tx.get_flocks(i), readonly=True)
        for (lsid, owner), ltype in sorted(locks.items()):
            if lsid == sid:
                flocks.append({"Inode": ino, "Owner": owner, "Ltype": ltype})
    for ino in sorted(set(pinos)):
        locks = engine.txn(lambda tx, i=ino: tx.get_plocks(i), readonly=True)
        for (lsid, owner), raw in sorted(locks.items()):
            if lsid == sid:
                records = [{"Type": t, "Pid": p, "Start": st, "End": en}
                           for t, p, st, en in decode_plock_records(raw)]
                plocks.append({"Inode": ino, "Owner": owner, "Records": records})
    if flocks:
        out["Flocks"] = flocks
    if plocks:
        out["Plocks"] = plocks
    return out


# --- usage ------------------------------------------------------------------------------------------


def statistic(engine: Any, fmt: Format) -> dict[str, int]:
    total, avail, iused, iavail = volume_statfs(fmt.Capacity, fmt.Inodes, engine.get_counter("usedSpace"),
                                                engine.get_counter("totalInodes"))
    return {"UsedSpace": total - avail, "AvailableSpace": avail, "UsedInodes": iused, "AvailableInodes": iavail}


def more_statistic(engine: Any) -> dict[str, int]:
    """Files in the trash and files waiting for deletion (zero counts are left out, as JuiceFS)."""
    trash_count = trash_size = 0

    def walk_trash(tx: Any) -> tuple[int, int]:
        count = size = 0
        for _, typ, ino in tx.list_entries(TRASH_INODE):
            if typ != TYPE_DIRECTORY:
                continue
            for _, ctyp, cino in tx.list_entries(ino):
                if ctyp == TYPE_FILE:
                    attr = tx.get_attr(cino)
                    count += 1
                    size += attr.length if attr else 0
        return count, size

    try:
        trash_count, trash_size = engine.txn(walk_trash, readonly=True)
    except Exception as e:  # noqa: BLE001 - statistics are best effort
        log.warning("scan trash: %s", e)
    dels = engine.list_delfiles()
    out = {
        "TrashFileCount": trash_count,
        "TrashFileSize": trash_size,
        "PendingDeletedFileCount": len(dels),
        "PendingDeletedFileSize": sum(d.length for d in dels),
    }
    return {k: v for k, v in out.items() if v}
