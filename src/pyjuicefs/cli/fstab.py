"""Mounting at boot: the fstab line of `pyjuicefs mount --update-fstab` and the mount(8) helper.

The line is JuiceFS 1.4's (`juicefs mount --update-fstab`), with our type:

    META-URL  MOUNTPOINT  pyjuicefs  _netdev,nofail,<option>[=<value>],...  0 0

Options are the mount flags given, named without dashes, sorted (the `-o` value goes in as it is);
--update-fstab and -d/--background are left out, and so are the storage secret flags
(--secret-key, --session-token: fstab is world-readable). mount(8) runs `/sbin/mount.pyjuicefs
META-URL MOUNTPOINT -o OPTIONS` for such a line, which mounts with `pyjuicefs mount -d`.

PYJUICEFS_FSTAB (default /etc/fstab) and PYJUICEFS_SBIN (default /sbin) point elsewhere, e.g. in tests.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile

from ..errors import UserError

log = logging.getLogger("pyjuicefs.cli")

FSTYPE = "pyjuicefs"
HELPER = "mount.pyjuicefs"
# Not written: flags about this run only, and secrets.
_SKIP = {"background", "update_fstab", "mount_parser", "func", "command"}
_SECRETS = {"secret_key", "session_token"}


def fstab_path() -> str:
    return os.environ.get("PYJUICEFS_FSTAB") or "/etc/fstab"


def sbin_dir() -> str:
    return os.environ.get("PYJUICEFS_SBIN") or "/sbin"


# --- the flags given ------------------------------------------------------------------------------


def absolute_meta_url(url: str) -> str:
    """A sqlite3/badger URL with a relative path made absolute (JuiceFS expandPathForEmbedded): the
    daemon runs in /, and fstab is read from anywhere."""
    for scheme in ("sqlite3://", "badger://"):
        if url.startswith(scheme):
            path = url[len(scheme):]
            if path and not path.startswith("/"):
                return scheme + os.path.abspath(path)
    return url


def long_flag(action: argparse.Action) -> str:
    """The flag as written on the command line: its first long name, else its short one."""
    return next((s for s in action.option_strings if s.startswith("--")), action.option_strings[0])


def given_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[tuple[argparse.Action, object]]:
    """(action, value) of every option of `parser` that differs from its default in `args`:
    True for a switch, a list for a repeated option (-o), else the value."""
    out: list[tuple[argparse.Action, object]] = []
    for action in parser._actions:  # noqa: SLF001 - argparse has no public list of its actions
        if not action.option_strings or action.dest == "help" or not hasattr(args, action.dest):
            continue
        value = getattr(args, action.dest)
        if action.nargs == 0:  # a switch
            if value is True and action.default is not True:
                out.append((action, True))
        elif isinstance(value, list):
            if value:
                out.append((action, list(value)))
        elif value is not None and value != action.default:
            out.append((action, value))
    return out


def fstab_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str:
    """The options column for the flags given (JuiceFS tellFstabOptions)."""
    opts = ["_netdev,nofail"]
    for action, value in given_options(parser, args):
        if action.dest in _SKIP:
            continue
        name = long_flag(action).lstrip("-")
        if action.dest in _SECRETS:
            log.warning("--%s is not written to %s (it is readable by every user): store it in the volume "
                        "with `pyjuicefs config META-URL --%s ...`", name, fstab_path(), name)
            continue
        if value is True:
            opts.append(name)
        elif isinstance(value, list):
            if name == "o":
                opts.append(",".join(str(v) for v in value))
            else:
                opts += [f"{name}={v}" for v in value]
        else:
            if action.dest == "cache_dir" and value != "memory":
                value = ":".join(os.path.abspath(os.path.expanduser(d)) for d in str(value).split(":") if d)
            elif action.dest == "log":
                value = os.path.abspath(os.path.expanduser(str(value)))
            opts.append(f"{name}={value}")
    return ",".join(sorted(opts))


# --- /etc/fstab -----------------------------------------------------------------------------------


def _escape(field: str) -> str:
    """An fstab field: whitespace and backslashes as octal escapes, as getmntent(3) reads them."""
    return (field.replace("\\", "\\134").replace(" ", "\\040").replace("\t", "\\011")
            .replace("\n", "\\012"))


def _unescape(field: str) -> str:
    for code, ch in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, ch)
    return field


def fstab_entry(meta_url: str, mountpoint: str, options: str) -> str:
    return f"{_escape(meta_url)}  {_escape(mountpoint)}  {FSTYPE}  {options}  0 0"


def update_fstab(meta_url: str, mountpoint: str, options: str, path: str | None = None) -> bool:
    """Write the line of `mountpoint` into the fstab at `path`: replace an existing pyjuicefs line
    for that mount point, else append. Atomic (a temp file renamed over it), mode kept. Returns
    whether the file changed."""
    path = path or fstab_path()
    entry = fstab_entry(meta_url, mountpoint, options)
    try:
        with open(path) as f:
            lines = f.read().splitlines()
        st: os.stat_result | None = os.stat(path)
    except FileNotFoundError:
        lines, st = [], None
    index = -1
    for i, line in enumerate(lines):
        fields = line.split()
        if (len(fields) >= 3 and not fields[0].startswith("#") and fields[2] == FSTYPE
                and os.path.normpath(_unescape(fields[1])) == mountpoint):
            index = i
    if index >= 0:
        if lines[index] == entry:
            return False
        lines[index] = entry
    else:
        lines.append(entry)
    fd, tmp = tempfile.mkstemp(prefix=".fstab.", dir=os.path.dirname(os.path.abspath(path)))
    try:
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.chmod(tmp, st.st_mode & 0o7777 if st else 0o644)
        if st is not None and os.getuid() == 0:
            os.chown(tmp, st.st_uid, st.st_gid)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return True


# --- /sbin/mount.pyjuicefs ------------------------------------------------------------------------


def _helper_source(target: str) -> str | None:
    """The installed `mount.pyjuicefs` console script: next to this Python first (a pyenv or venv
    shim on PATH may not work under mount(8)), then on PATH."""
    candidates = [os.path.join(os.path.dirname(sys.executable), HELPER), shutil.which(HELPER)]
    for c in candidates:
        if c and os.access(c, os.X_OK) and os.path.realpath(c) != os.path.realpath(target):
            return os.path.abspath(c)
    return None


def install_mount_helper(directory: str | None = None) -> str | None:
    """Make `<directory>/mount.pyjuicefs` (JuiceFS: a symlink /sbin/mount.juicefs): a symlink to the
    console script, or, when there is none (not installed with pip), a two-line wrapper running
    this Python. Returns its path if it was created, None if it already existed."""
    directory = directory or sbin_dir()
    target = os.path.join(directory, HELPER)
    if os.path.lexists(target):
        return None
    src = _helper_source(target)
    if src is not None:
        os.symlink(src, target)
    else:
        fd, tmp = tempfile.mkstemp(prefix=f".{HELPER}.", dir=directory)
        with os.fdopen(fd, "w") as f:
            f.write(f"#!/bin/sh\nexec '{sys.executable}' -m pyjuicefs.cli.mount_helper \"$@\"\n")
        os.chmod(tmp, 0o755)
        os.replace(tmp, target)
    return target


def update_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser, mountpoint: str) -> None:
    """--update-fstab: the fstab line and the helper. Problems are warnings (as in JuiceFS): the
    mount itself goes on."""
    if os.getuid() != 0 and not os.environ.get("PYJUICEFS_FSTAB"):
        log.warning("--update-fstab should be used as root: %s was not changed", fstab_path())
        return
    ok = True
    try:
        made = install_mount_helper()
        if made:
            log.info("Installed %s", made)
    except OSError as e:
        ok = False
        log.warning("failed to create %s: %s", os.path.join(sbin_dir(), HELPER), e)
    try:
        changed = update_fstab(absolute_meta_url(args.meta_url), mountpoint, fstab_options(parser, args))
        log.info("%s %s", "Updated" if changed else "No change to", fstab_path())
    except (OSError, UserError) as e:
        ok = False
        log.warning("failed to update %s: %s", fstab_path(), e)
    if ok:
        log.info("Successfully updated fstab, now you can mount with `mount %s`", mountpoint)
