"""`pyjuicefs config META-URL [flags]`: show the volume settings, or change only the flags given.

As JuiceFS 1.4.2 cmd/config.go: each change is listed as 'flag: old -> new'; a new bucket or new
credentials are tested first; a quota below current usage, turning the trash off and client
version gates that reject running clients ask 'Proceed anyway? [y/N]' unless --yes (a closed
stdin answers no); --force skips all of these checks. Secrets stay encrypted.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from typing import Any

from ..errors import UserError
from ..format import Format, parse_version
from .. import JUICEFS_COMPAT_VERSION
from . import options as opt

log = logging.getLogger("pyjuicefs.cli")

HELP = """\
Only the flags given are changed; without flags the settings are printed.

Examples:
  # show the current settings
  pyjuicefs config redis://localhost
  # change the volume quota
  pyjuicefs config redis://localhost --inodes 10000000 --capacity 1048576
  # keep removed files 7 days in the trash
  pyjuicefs config redis://localhost --trash-days 7
  # limit the client versions allowed to connect
  pyjuicefs config redis://localhost --min-client-version 1.0.0 --max-client-version 1.1.0
"""

_BOOL = {"true": True, "t": True, "1": True, "yes": True, "false": False, "f": False, "0": False, "no": False}


def _bool(value: str) -> bool:
    v = _BOOL.get(value.lower())
    if v is None:
        raise argparse.ArgumentTypeError(f"invalid boolean {value!r}: use true or false")
    return v


def register(sub: argparse._SubParsersAction) -> None:
    from .main import add_global_flags

    p = sub.add_parser("config", help="Change configuration of a volume", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("meta_url", metavar="META-URL", help="metadata engine URL")
    opt.add_storage_flags(p)
    g = p.add_argument_group("client defaults")
    g.add_argument("--upload-limit", metavar="MBPS", help="default bandwidth limit of a client for upload in Mbps")
    g.add_argument("--download-limit", metavar="MBPS", help="default bandwidth limit of a client for download in Mbps")
    opt.add_management_flags(p)
    m = p.add_argument_group("management")
    m.add_argument("--encrypt-secret", action="store_const", const=True,
                   help="encrypt the secret key if it was previously stored in plain format")
    m.add_argument("--min-client-version", metavar="VERSION", help="minimum client version allowed to connect")
    m.add_argument("--max-client-version", metavar="VERSION", help="maximum client version allowed to connect")
    m.add_argument("--dir-stats", nargs="?", const=True, type=_bool, metavar="BOOL",
                   help="enable dir stats (--dir-stats=false disables them)")
    p.add_argument("-y", "--yes", action="store_true",
                   help="automatically answer 'yes' to all prompts and run non-interactively")
    p.add_argument("--force", action="store_true", help="skip sanity checks and force update the configurations")
    add_global_flags(p)
    p.set_defaults(func=run)


_CHANGEABLE = ("storage", "bucket", "access_key", "secret_key", "session_token", "storage_class",
               "upload_limit", "download_limit", "capacity", "inodes", "trash_days", "encrypt_secret",
               "min_client_version", "max_client_version", "dir_stats")


class _Change:
    """What a config run changes, and which checks that calls for."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.quota = self.storage = self.trash = self.client_ver = False

    def add(self, flag: str, old: object, new: object, width: bool = True) -> None:
        self.lines.append(f"{flag:>10}: {old} -> {new}" if width else f"{flag}: {old} -> {new}")


def _check_version_string(v: str) -> None:
    try:
        parse_version(v)
    except UserError:
        raise UserError(f"Invalid version string: {v}") from None


def apply(fmt: Format, args: argparse.Namespace) -> _Change:
    """Apply the given flags to fmt in place; returns the changes (empty when nothing changed)."""
    c = _Change()
    required_min = ""
    for name in opt.given(args, *_CHANGEABLE):
        flag = name.replace("_", "-")
        val = getattr(args, name)
        if name == "capacity":
            new = opt.parse_bytes(val, "G", flag)
            if new != fmt.Capacity:
                c.add(flag, opt.fmt_ibytes(fmt.Capacity), opt.fmt_ibytes(new))
                fmt.Capacity, c.quota = new, True
        elif name == "inodes":
            new = opt.parse_uint(val, flag)
            if new != fmt.Inodes:
                c.add(flag, opt.fmt_comma(fmt.Inodes), opt.fmt_comma(new))
                fmt.Inodes, c.quota = new, True
        elif name == "storage":
            from ..object import STORAGE_KINDS

            if val.lower() not in STORAGE_KINDS:
                raise UserError(f"invalid storage {val!r}: supported kinds are {', '.join(STORAGE_KINDS)}")
            if val != fmt.Storage:
                c.add(flag, fmt.Storage, val)
                fmt.Storage, c.storage = val, True
        elif name == "bucket":
            if val != fmt.Bucket:
                storage = args.storage if args.storage is not None else fmt.Storage
                if storage.lower() == "file":
                    val = os.path.abspath(os.path.expanduser(val.removeprefix("file://"))) + "/"
                if val != fmt.Bucket:
                    c.add(flag, fmt.Bucket, val)
                    fmt.Bucket, c.storage = val, True
        elif name == "access_key":
            if val != fmt.AccessKey:
                c.add(flag, fmt.AccessKey, val)
                fmt.AccessKey, c.storage = val, True
        elif name in ("secret_key", "session_token"):  # always updated, never shown
            c.lines.append(f"{flag:>10}: updated")
            try:
                fmt.decrypt()
            except UserError as e:
                log.warning("decrypt secrets: %s", e)
            setattr(fmt, "SecretKey" if name == "secret_key" else "SessionToken", val)
            c.storage = True
        elif name == "storage_class":
            tiers = fmt.Tiers if isinstance(fmt.Tiers, dict) else {}
            tier0 = dict(tiers.get("0") or {"ID": 0, "StorageClass": fmt.StorageClass, "Tag": ""})
            if val != tier0.get("StorageClass", ""):
                c.add(flag, tier0.get("StorageClass", ""), val)
                tier0["StorageClass"] = val
                fmt.Tiers = {**tiers, "0": tier0}
                fmt.StorageClass, c.storage = val, True
        elif name in ("upload_limit", "download_limit"):
            new = opt.parse_mbps(val, flag)
            field = "UploadLimit" if name == "upload_limit" else "DownloadLimit"
            if new != getattr(fmt, field):
                c.add(flag, opt.fmt_mbps(getattr(fmt, field)), opt.fmt_mbps(new))
                setattr(fmt, field, new)
        elif name == "trash_days":
            new = opt.parse_int(val, flag)
            if new != fmt.TrashDays:
                if new < 0:
                    raise UserError(f"Invalid trash days: {new}")
                c.add(flag, fmt.TrashDays, new)
                fmt.TrashDays, c.trash = new, True
        elif name == "dir_stats":
            if val != fmt.DirStats:
                c.add(flag, str(fmt.DirStats).lower(), str(val).lower())
                fmt.DirStats = val
        elif name == "min_client_version":
            if val != fmt.MinClientVersion:
                _check_version_string(val)
                if fmt.MinClientVersion and parse_version(val) < parse_version(fmt.MinClientVersion):
                    raise UserError(f"cannot lower min-client-version from {fmt.MinClientVersion} to {val}")
                if not required_min or parse_version(val) > parse_version(required_min):
                    required_min = val
        elif name == "max_client_version":
            if val != fmt.MaxClientVersion:
                _check_version_string(val)
                c.add(flag, fmt.MaxClientVersion, val, width=False)
                fmt.MaxClientVersion, c.client_ver = val, True
    if args.encrypt_secret and not fmt.KeyEncrypted and (fmt.SecretKey or fmt.SessionToken):
        c.lines.append(f"{'secret-key':>10}: encrypted")
    if required_min and (not fmt.MinClientVersion
                         or parse_version(fmt.MinClientVersion) < parse_version(required_min)):
        c.add("min-client-version", fmt.MinClientVersion, required_min, width=False)
        fmt.MinClientVersion, c.client_ver = required_min, True
    return c


def _client_version_problems(engine: Any, fmt: Format) -> str:
    """'host H pid P client version error: ...' for each running client the new gates reject."""
    out = ""
    try:
        sessions = engine.list_sessions()
    except Exception as e:  # noqa: BLE001 - a warning only
        log.warning("list sessions: %s", e)
        return ""
    for s in sessions:
        try:
            info = json.loads(s.info or b"{}")
        except ValueError:
            continue
        ver = str(info.get("Version", ""))
        try:
            v = parse_version(ver)
        except UserError:
            continue
        err = ""
        if fmt.MinClientVersion and v < parse_version(fmt.MinClientVersion):
            err = f"allowed minimum version: {fmt.MinClientVersion}"
        elif fmt.MaxClientVersion and v > parse_version(fmt.MaxClientVersion):
            err = f"allowed maximum version: {fmt.MaxClientVersion}"
        if err:
            out += f"host {info.get('HostName', '')} pid {info.get('ProcessID', 0)} client version error: {err}\n"
    return out


def _ask(yes: bool) -> None:
    if not yes and not opt.confirmed():
        raise UserError("Aborted.")


def _sanity_checks(engine: Any, fmt: Format, c: _Change, yes: bool) -> None:
    if c.storage:
        from .format import open_storage, test_storage

        test_storage(open_storage(fmt))
    if c.quota:
        used = max(engine.get_counter("usedSpace"), 0)
        iused = max(engine.get_counter("totalInodes"), 0)
        if (fmt.Capacity > 0 and used >= fmt.Capacity) or (fmt.Inodes > 0 and iused >= fmt.Inodes):
            opt.warn(f"New quota is too small (used / quota): {used} / {fmt.Capacity} bytes, "
                     f"{iused} / {fmt.Inodes} inodes.")
            _ask(yes)
    if c.trash and fmt.TrashDays == 0:
        opt.warn("The current trash will be emptied and future removed files will purged immediately.")
        _ask(yes)
    if c.client_ver:
        confirm = False
        try:
            ours = parse_version(JUICEFS_COMPAT_VERSION)
            rejected = ((fmt.MinClientVersion and ours < parse_version(fmt.MinClientVersion))
                        or (fmt.MaxClientVersion and ours > parse_version(fmt.MaxClientVersion)))
        except UserError:
            rejected = True
        if rejected:
            opt.warn(f"Clients below version {fmt.MinClientVersion} will be rejected after modification.")
            confirm = True
        problems = _client_version_problems(engine, fmt)
        if problems:
            print(problems, flush=True)
            confirm = True
        if confirm:
            _ask(yes)


def run(args: argparse.Namespace) -> int:
    engine = opt.open_engine(args.meta_url)
    try:
        fmt = opt.load_format(engine, check_version=False)
        if not opt.given(args, *_CHANGEABLE):
            print("Nothing changed." if args.yes or args.force else fmt)
            return 0
        encrypted = fmt.KeyEncrypted
        c = apply(fmt, args)
        if not c.lines:
            print("Nothing changed.")
            return 0
        if not args.force:
            _sanity_checks(engine, fmt, c, args.yes)
        if encrypted or args.encrypt_secret or args.secret_key is not None or args.session_token is not None:
            fmt.encrypt()
        opt.new_meta(engine).init(fmt, False)
        print("\n".join(c.lines))
        return 0
    finally:
        opt._close(engine)
