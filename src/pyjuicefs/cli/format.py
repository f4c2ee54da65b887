"""`pyjuicefs format META-URL NAME`: create a volume (or update one, as JuiceFS still allows).

Steps, as JuiceFS 1.4 cmd/format.go: check the arguments; connect to the metadata engine; load
the settings already there (kept as they are with --no-update, otherwise only the flags given
change them); check the bucket with a probe object; write `juicefs_uuid` into a new volume's
bucket; save the settings (Meta.init enforces what may not change); print them, secrets removed.
Nothing is written to the metadata engine unless every check passed.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import secrets
import string
import time
import uuid

from ..errors import NotFormatted, ObjectNotFound, StorageAuthError, StorageError, UserError
from ..format import Format
from ..meta.types import MAX_META_VERSION
from . import options as opt

log = logging.getLogger("pyjuicefs.cli")

HELP = """\
Create a new volume. META-URL sets up the metadata engine (Redis, MySQL, PostgreSQL, SQLite, etcd),
and NAME is the prefix of all objects in the data storage.

Changing an existing volume with format is deprecated; use the "config" command.

Examples:
  # a test volume with its data in a local directory
  pyjuicefs format sqlite3://myjfs.db myjfs
  # Redis and S3
  pyjuicefs format redis://localhost myjfs --storage s3 --bucket https://mybucket.s3.us-east-2.amazonaws.com
  # password-protected MySQL (safer: META_PASSWORD=mypassword with mysql://jfs:@(127.0.0.1:3306)/juicefs)
  pyjuicefs format "mysql://jfs:mypassword@(127.0.0.1:3306)/juicefs" myjfs
  # quotas, no trash
  pyjuicefs format sqlite3://myjfs.db myjfs --inodes 1000000 --capacity 102400 --trash-days 0
"""

# JuiceFS cmd/format.go: 3-63 characters, lowercase letters, digits and '-', no '-' at either end.
VALID_NAME = re.compile(r"^[a-z0-9][a-z0-9\-]{1,61}[a-z0-9]$")
COMPRESSIONS = ("none", "lz4", "zstd")
MIN_BLOCK, MAX_BLOCK = 64 << 10, 16 << 20
MAX_SHARDS = 256
DEFAULT_ENCRYPT_ALGO = "aes256gcm-rsa"
DEFAULT_MIN_CLIENT_VERSION = "1.1.0-A"
UUID_OBJECT = "juicefs_uuid"


def register(sub: argparse._SubParsersAction) -> None:
    from .main import add_global_flags

    p = sub.add_parser("format", help="Format a volume", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("meta_url", metavar="META-URL", help="metadata engine URL, e.g. redis://localhost:6379/1")
    p.add_argument("name", metavar="NAME", help="volume name: 3-63 of a-z, 0-9 and '-'")
    opt.add_storage_flags(p)
    g = p.add_argument_group("data format")
    g.add_argument("--block-size", metavar="SIZE",
                   help="size of block, in KiB without a unit; 64K to 16M (default: 4M)")
    g.add_argument("--compress", metavar="ALGO", help="compression algorithm: lz4, zstd, none (default: none)")
    g.add_argument("--hash-prefix", action="store_const", const=True,
                   help="add a hash prefix to the names of objects")
    g.add_argument("--shards", metavar="N", help="store the blocks into N buckets by hash of key (0-256)")
    opt.add_management_flags(p)
    p.add_argument("--force", action="store_true", help="overwrite existing format")
    p.add_argument("--no-update", action="store_true", help="don't update an existing volume")
    add_global_flags(p)
    p.set_defaults(func=run)


# --- checks of the arguments (before anything is contacted) --------------------------------------


def check_name(name: str) -> None:
    if not VALID_NAME.match(name):
        raise UserError(f"invalid name: {name!r}, only lowercase letters, digits and '-' are allowed, "
                        "and the length should be 3 to 63 characters")


def parse_block_size(value: str) -> int:
    """Block size in KiB. A bare number is KiB (JuiceFS); the size is rounded down to a power of
    two; sizes outside 64K-16M are refused (JuiceFS silently clamps them: we say so instead)."""
    size = opt.parse_bytes(value, "K", "block-size")
    if size <= 0:
        raise UserError(f"invalid block size {value!r}: must be between 64K and 16M")
    rounded = 1 << (size.bit_length() - 1)
    if rounded < MIN_BLOCK or rounded > MAX_BLOCK:
        raise UserError(f"invalid block size {value!r} ({opt.fmt_ibytes(size)}): must be between 64K and 16M "
                        "(a number without a unit is in KiB)")
    if rounded != size:
        log.warning("block size %s is not a power of 2: use %s instead", opt.fmt_ibytes(size), opt.fmt_ibytes(rounded))
    return rounded >> 10


def _checked_args(args: argparse.Namespace) -> dict[str, object]:
    """Every given flag parsed and validated; raises UserError on the first bad one."""
    check_name(args.name)
    v: dict[str, object] = {}
    if args.compress is not None:
        if args.compress.lower() not in COMPRESSIONS:
            raise UserError(f"unsupported compress algorithm: {args.compress!r} (use one of {', '.join(COMPRESSIONS)})")
        v["compress"] = args.compress.lower()
    if args.trash_days is not None:
        days = opt.parse_int(args.trash_days, "trash-days")
        if days < 0:
            raise UserError(f"invalid trash days: {days}")
        v["trash_days"] = days
    if args.shards is not None:
        shards = opt.parse_int(args.shards, "shards")
        if shards < 0 or shards > MAX_SHARDS:
            raise UserError(f"invalid shards: {shards} (must be 0 to {MAX_SHARDS})")
        v["shards"] = shards
    if args.block_size is not None:
        v["block_size"] = parse_block_size(args.block_size)
    if args.capacity is not None:
        v["capacity"] = opt.parse_bytes(args.capacity, "G", "capacity")
    if args.inodes is not None:
        v["inodes"] = opt.parse_uint(args.inodes, "inodes")
    for k in ("storage", "bucket", "access_key", "secret_key", "session_token", "storage_class", "hash_prefix"):
        if getattr(args, k) is not None:
            v[k] = getattr(args, k)
    if "storage" in v:
        from ..object import STORAGE_KINDS

        if str(v["storage"]).lower() not in STORAGE_KINDS:
            raise UserError(f"invalid storage {v['storage']!r}: supported kinds are {', '.join(STORAGE_KINDS)}")
    if int(v.get("shards", 0)) > 1 and not _has_format_verb(v.get("bucket")):
        raise UserError("--shards needs a bucket name with a '%d' for the shard number, e.g. --bucket /var/jfs/jfs-%d")
    return v


def _has_format_verb(bucket: object) -> bool:
    return isinstance(bucket, str) and re.search(r"%\d*d", bucket) is not None


# --- the volume settings ---------------------------------------------------------------------------


def new_format(name: str, v: dict[str, object]) -> Format:
    """Settings of a new volume, with JuiceFS 1.4.2's defaults."""
    from ..object import default_bucket

    sc = str(v.get("storage_class", ""))
    fmt = Format(
        Name=name,
        UUID=str(uuid.uuid4()),
        Storage=str(v.get("storage", "file")),
        StorageClass=sc,
        Tiers={"0": {"ID": 0, "StorageClass": sc, "Tag": ""}},
        Bucket=str(v.get("bucket", default_bucket())),
        AccessKey=str(v.get("access_key", "")),
        SecretKey=str(v.get("secret_key", "")),
        SessionToken=str(v.get("session_token", "")),
        BlockSize=int(v.get("block_size", 4096)),  # type: ignore[arg-type]
        Compression=str(v.get("compress", "none")),
        Shards=int(v.get("shards", 0)),  # type: ignore[arg-type]
        HashPrefix=bool(v.get("hash_prefix", False)),
        Capacity=int(v.get("capacity", 0)),  # type: ignore[arg-type]
        Inodes=int(v.get("inodes", 0)),  # type: ignore[arg-type]
        EncryptAlgo=DEFAULT_ENCRYPT_ALGO,
        TrashDays=int(v.get("trash_days", 1)),  # type: ignore[arg-type]
        MetaVersion=MAX_META_VERSION,
        MinClientVersion=DEFAULT_MIN_CLIENT_VERSION,
        DirStats=True,
        EnableACL=False,
    )
    # Credentials from the environment when no flag gave them; unset so no child process sees them.
    for field, env in (("AccessKey", "ACCESS_KEY"), ("SecretKey", "SECRET_KEY"), ("SessionToken", "SESSION_TOKEN")):
        if not getattr(fmt, field) and os.environ.get(env):
            setattr(fmt, field, os.environ.pop(env))
    return fmt


def update_format(fmt: Format, name: str, v: dict[str, object]) -> bool:
    """Apply the given flags to existing settings (JuiceFS's deprecated update path). Returns
    whether secrets were encrypted before (they are encrypted again when saved)."""
    encrypted = fmt.KeyEncrypted
    fmt.Name = name
    simple = {"capacity": "Capacity", "inodes": "Inodes", "bucket": "Bucket", "access_key": "AccessKey",
              "trash_days": "TrashDays", "block_size": "BlockSize", "compress": "Compression",
              "shards": "Shards", "hash_prefix": "HashPrefix", "storage": "Storage"}
    for k, field in simple.items():
        if k in v:
            setattr(fmt, field, v[k])
    for k, field in (("secret_key", "SecretKey"), ("session_token", "SessionToken")):
        if k in v:
            try:
                fmt.decrypt()
            except UserError as e:
                log.warning("decrypt secrets: %s", e)
            setattr(fmt, field, v[k])
    return encrypted


# --- the bucket ------------------------------------------------------------------------------------


def _probe_key() -> str:
    return "testing/" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(10))


def test_storage(blob, tries: int = 3) -> None:  # noqa: ANN001 - an ObjectStorage
    """Put, read back and delete a probe object, creating the bucket if the first put fails (as
    JuiceFS's format does). Raises UserError with the reason when the bucket is unusable."""
    key, data = _probe_key(), os.urandom(100)
    err: Exception | None = None
    for i in range(tries):
        try:
            _probe(blob, key, data)
            try:
                blob.delete("testing/")
            except StorageError:
                pass
            return
        except StorageAuthError as e:  # retrying will not help
            err = e
            break
        except (StorageError, OSError) as e:
            err = e
            if not _transient(e):
                break
            log.warning("Test storage %s failed: %s, tries: #%d", blob, e, i + 1)
            time.sleep(0.2 * (i + 1))
    raise UserError(f"Storage {blob} is not configured correctly: {err}")


def _transient(e: Exception) -> bool:
    from ..errors import TransientStorageError

    return isinstance(e, TransientStorageError)


def _probe(blob, key: str, data: bytes) -> None:  # noqa: ANN001
    try:
        blob.put(key, data)
    except StorageAuthError as e:
        raise StorageAuthError(f"Failed to put: {e}") from None
    except StorageError as first:
        try:
            blob.create()
        except StorageError as e2:
            raise type(e2)(f"Failed to create bucket {blob}: {e2}, previous error: {first}") from None
        try:
            blob.put(key, data)
        except StorageError as e:
            raise type(e)(f"Failed to put: {e}") from None
    try:
        got = blob.get(key)
    except StorageError as e:
        raise type(e)(f"Failed to get: {e}") from None
    if got != data:
        raise StorageError(f"read wrong data: expected {data.hex()}, got {got.hex()}")
    try:
        blob.delete(key)
    except StorageError as e:  # no delete permission is usable, but the user should know
        log.warning("Failed to delete, err: %s", e)


def open_storage(fmt: Format):  # noqa: ANN201 - an ObjectStorage
    """The volume's bucket(s) with few retries: a command must fail within seconds."""
    from ..object import create_storage
    from ..object.retry import Backoff

    try:
        return create_storage(fmt, retries=2, get_timeout=20, put_timeout=20, backoff=Backoff(0.1, 1.0))
    except UserError:
        raise
    except (StorageError, ValueError) as e:
        raise UserError(f"object storage: {e}") from None


def _check_empty(blob) -> None:  # noqa: ANN001
    """A new volume must not reuse a prefix that already holds data."""
    try:
        for o in blob.list_all():
            if o.is_dir or o.size == 0:
                continue
            if o.key != "testing" and not o.key.startswith("testing/"):
                raise UserError(f"Storage {blob} is not empty; please clean it up or pick another volume name")
    except ObjectNotFound:
        return
    except StorageError as e:
        log.warning("List storage %s failed: %s", blob, e)


# --- the command -----------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    v = _checked_args(args)
    engine = opt.open_engine(args.meta_url)
    try:
        return _format(args, v, engine)
    finally:
        opt._close(engine)


def _format(args: argparse.Namespace, v: dict[str, object], engine) -> int:  # noqa: ANN001
    create = False
    encrypted = False
    try:
        fmt = opt.load_format(engine, check_version=False)
    except NotFormatted:
        fmt = None
    if fmt is not None:
        if args.no_update:
            log.info("Volume %s is already formatted; --no-update keeps it unchanged", fmt.Name)
            return 0
        encrypted = update_format(fmt, args.name, v)
    else:
        create = True
        fmt = new_format(args.name, v)
    if fmt.Storage.lower() == "file":
        fmt.Bucket = os.path.abspath(os.path.expanduser(fmt.Bucket.removeprefix("file://")))
        fmt.Bucket += "/"

    blob = open_storage(fmt)
    log.info("Data use %s", blob)
    if not os.environ.get("JFS_NO_CHECK_OBJECT_STORAGE"):
        test_storage(blob)
        if create:
            _check_empty(blob)
            try:
                blob.put(UUID_OBJECT, fmt.UUID.encode())
            except StorageError as e:
                log.warning("Put uuid object: %s", e)

    if create or encrypted or fmt.SecretKey or fmt.SessionToken:
        fmt.encrypt()
    try:
        opt.new_meta(engine).init(fmt, args.force)
    except BaseException:
        if create:
            try:
                blob.delete(UUID_OBJECT)
            except Exception:  # noqa: BLE001 - the init error is the one to report
                pass
        raise
    log.info("Volume is formatted as %s", fmt)
    return 0
