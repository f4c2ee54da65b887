"""`mount.pyjuicefs`: the helper mount(8) runs for file systems of type `pyjuicefs`.

    mount.pyjuicefs META-URL MOUNTPOINT [-sfnv] [-N NS] [-o OPTIONS] [-t TYPE]

becomes `pyjuicefs mount -d [flags] [-o fuse-options] META-URL MOUNTPOINT`, as JuiceFS's
mount.juicefs does: an option that names a mount flag becomes that flag (`cache-size=100` →
`--cache-size=100`, `writeback` → `--writeback`; JuiceFS's attrcacheto/entrycacheto/direntrycacheto
too), generic mount options are dropped (_netdev, nofail, rw, defaults, auto/noauto, user/users/
nouser, owner, group, comment=…, x-*, …), and anything else is a FUSE option (`allow_other`, `ro`).
"""

from __future__ import annotations

import argparse
import logging
import sys

from ..errors import UserError

# Options of mount(8)/fstab that mean nothing to the file system.
GENERIC = {"_netdev", "nofail", "rw", "defaults", "remount", "auto", "noauto", "user", "users", "nouser",
           "owner", "group", "background"}
GENERIC_PREFIXES = ("x-", "comment=", "_")
ALIASES = {"attrcacheto": "attr-cache", "entrycacheto": "entry-cache", "direntrycacheto": "dir-entry-cache"}


def mount_flags() -> dict[str, bool]:
    """Long flag names of `pyjuicefs mount` (without dashes) -> whether the flag takes a value."""
    from . import mount

    p = argparse.ArgumentParser(add_help=False)
    sub = p.add_subparsers()
    mount.register(sub)
    flags: dict[str, bool] = {}
    for action in sub.choices["mount"]._actions:  # noqa: SLF001 - argparse has no public list
        for s in action.option_strings:
            if s.startswith("--"):
                flags[s[2:]] = action.nargs != 0
    return flags


def split_argv(argv: list[str]) -> tuple[str, str, list[str], bool, bool]:
    """(spec, dir, -o values, fake, verbose) from mount(8)'s helper arguments."""
    positional: list[str] = []
    opts: list[str] = []
    fake = verbose = False
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "-o" or a in ("-N", "-t"):
            if i + 1 >= len(argv):
                raise UserError(f"mount.pyjuicefs: option {a} requires a value")
            if a == "-o":
                opts.append(argv[i + 1])
            i += 2
            continue
        if a.startswith("-o") and len(a) > 2:
            opts.append(a[2:])
        elif a.startswith("-") and len(a) > 1 and not a.startswith("--"):
            letters = a[1:]
            fake = fake or "f" in letters
            verbose = verbose or "v" in letters
            # -s (sloppy), -n (no mtab) need nothing here
        else:
            positional.append(a)
        i += 1
    if len(positional) != 2:
        raise UserError("usage: mount.pyjuicefs META-URL MOUNTPOINT [-o OPTIONS]")
    return positional[0], positional[1], opts, fake, verbose


def mount_args(spec: str, mountpoint: str, opt_values: list[str], verbose: bool = False) -> list[str]:
    """The `pyjuicefs` arguments for a mount(8) call."""
    flags = mount_flags()
    args = ["mount", "-d"]
    fuse: list[str] = []
    for value in opt_values:
        for item in value.split(","):
            item = item.strip()
            name, eq, val = item.partition("=")
            if not item or item in GENERIC or item.startswith(GENERIC_PREFIXES):
                continue
            name = ALIASES.get(name, name)
            if name in ("update-fstab", "d"):
                continue
            if name in flags:
                if eq:
                    args.append(f"--{name}={val}")
                elif flags[name]:
                    raise UserError(f"mount.pyjuicefs: option {item} requires a value ({item}=...)")
                else:
                    args.append(f"--{name}")
                    if name == "debug":
                        fuse.append("debug")
            else:
                fuse.append(item)
    if verbose and "--verbose" not in args:
        args.append("--verbose")
    if fuse:
        args += ["-o", ",".join(fuse)]
    return args + [spec, mountpoint]


def main(argv: list[str] | None = None) -> int:
    from .main import main as cli_main, setup_logging

    argv = sys.argv[1:] if argv is None else argv
    try:
        spec, mountpoint, opts, fake, verbose = split_argv(argv)
        args = mount_args(spec, mountpoint, opts, verbose)
    except UserError as e:
        setup_logging(False, False)
        logging.getLogger("pyjuicefs").error("%s", e)
        return e.exit_code
    if fake:  # mount -f: do everything except the mount itself
        return 0
    return cli_main(args)


if __name__ == "__main__":
    raise SystemExit(main())
