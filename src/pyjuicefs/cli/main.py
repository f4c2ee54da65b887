"""Entry point: parse arguments, set up logging, run one command, map errors to exit codes."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from .. import JUICEFS_COMPAT_VERSION, __version__
from ..errors import PyJuiceFSError, UserError

# Commands in help order; each module pyjuicefs.cli.<name> has register() and run().
COMMANDS = ["format", "config", "status", "mount", "umount", "bench", "objbench"]

log = logging.getLogger("pyjuicefs")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pyjuicefs",
        description="pyjuicefs: a distributed POSIX file system compatible with JuiceFS 1.4",
    )
    p.add_argument("-V", "--version", action="version",
                   version=f"pyjuicefs version {__version__} (compatible with JuiceFS {JUICEFS_COMPAT_VERSION})")
    add_global_flags(p)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"pyjuicefs.cli.{name.replace('-', '_')}").register(sub)
    return p


def add_global_flags(p: argparse.ArgumentParser) -> None:
    """Global flags, accepted before or after the command name (as JuiceFS does)."""
    g = p.add_argument_group("global options")
    g.add_argument("-v", "--verbose", "--debug", action="store_true", default=argparse.SUPPRESS,
                   help="enable debug log")
    g.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                   help="show warnings and errors only")
    g.add_argument("--no-color", action="store_true", default=argparse.SUPPRESS, help="disable colors")


def setup_logging(verbose: bool, quiet: bool) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(
        "%(asctime)s pyjuicefs[%(process)d] <%(levelname)s>: %(message)s", "%Y/%m/%d %H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(getattr(args, "verbose", False), getattr(args, "quiet", False))
    if not getattr(args, "command", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        log.error("%s", e)
        return e.exit_code
    except PyJuiceFSError as e:
        log.error("%s", e)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # noqa: BLE001 - last resort: one line unless debugging
        if getattr(args, "verbose", False) or os.environ.get("PYJUICEFS_TRACEBACK"):
            log.exception("unexpected error")
        else:
            log.error("unexpected error: %s: %s (run with --debug for details)", type(e).__name__, e)
        return 1
