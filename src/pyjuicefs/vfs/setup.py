"""The composition root of a mount: open_volume() wires engine → Meta → object storage → chunk
store → VFS, and background_jobs() is what a mounted client runs besides requests (JuiceFS
baseMeta's background goroutines: session heartbeat, stale-session cleanup, delayed file
deletion, trash expiry)."""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
import time
from typing import TYPE_CHECKING

from ..chunk import ChunkStore
from ..chunk.limits import tune_malloc
from ..errors import ObjectNotFound, StorageError, UserError
from ..meta import new_engine, redact_url
from ..meta.base import Meta
from ..meta.base_common import MetaConfig
from ..object import create_storage, normalize_bucket
from .config import VFSConfig
from .stats import CountingStorage, Stats
from .vfs import VFS

if TYPE_CHECKING:
    from ..format import Format

log = logging.getLogger(__name__)

HOUR = 3600.0
DELETED_FILE_AGE = HOUR  # delfile records older than this are processed (JuiceFS cleanupDeletedFiles)
_OVERRIDES = {"storage": "Storage", "bucket": "Bucket", "access_key": "AccessKey", "secret_key": "SecretKey",
              "session_token": "SessionToken"}


def _apply_overrides(fmt: "Format", overrides: dict | None) -> "Format":
    """The volume's storage settings with per-client overrides (flags of mount) applied."""
    if not overrides:
        return fmt
    fmt = fmt.copy()
    for key, value in overrides.items():
        if key not in _OVERRIDES:
            raise UserError(f"unknown storage override {key!r}; expected one of {', '.join(_OVERRIDES)}")
        if value is None or value == "":
            continue
        setattr(fmt, _OVERRIDES[key], value)
    if overrides.get("bucket") or overrides.get("storage"):
        fmt.Bucket = normalize_bucket(fmt.Storage, fmt.Bucket)
    return fmt


def _probe_storage(fmt: "Format", conf: VFSConfig) -> None:
    """Fail early, with one clear line, when the bucket cannot be reached (no retries)."""
    probe = create_storage(fmt, retries=0, get_timeout=conf.get_timeout, put_timeout=conf.put_timeout)
    try:
        probe.head("juicefs_uuid")
    except ObjectNotFound:
        pass
    except StorageError as e:
        raise UserError(f"cannot reach the object storage {probe} of volume {fmt.Name}: {e}") from None
    finally:
        probe.close()


def open_volume(meta_url: str, *, vfs_conf: VFSConfig, meta_conf: MetaConfig | None = None,
                storage_overrides: dict | None = None) -> VFS:
    """Open a formatted volume for use: a VFS with a session and background jobs running.

    Raises UserError (one line) for an unformatted or too-new volume, an unreachable metadata
    engine or bucket, or bad overrides."""
    mconf = dataclasses.replace(meta_conf) if meta_conf is not None else MetaConfig(retries=vfs_conf.io_retries)
    if vfs_conf.read_only:
        mconf.read_only = True
    engine = new_engine(meta_url, retries=mconf.retries)
    closers = [engine.close]
    try:
        meta = Meta(engine, mconf)
        try:
            fmt = meta.load()
        except UserError:
            raise
        except Exception as e:  # noqa: BLE001 - connection refused, bad credentials…
            raise UserError(f"cannot load the volume from {redact_url(meta_url)}: {e}") from None
        fmt = _apply_overrides(fmt, storage_overrides)
        try:
            _probe_storage(fmt, vfs_conf)
            storage = create_storage(fmt, retries=vfs_conf.io_retries, get_timeout=vfs_conf.get_timeout,
                                     put_timeout=vfs_conf.put_timeout)
        except UserError:
            raise
        except Exception as e:  # noqa: BLE001
            raise UserError(f"cannot use the object storage of volume {fmt.Name}: {e}") from None
        closers.insert(0, storage.close)
        try:
            meta.new_session()
        except Exception as e:  # noqa: BLE001
            raise UserError(f"cannot register a session in {redact_url(meta_url)}: {e}") from None
        stats = Stats()
        store = _chunk_store(CountingStorage(storage, stats), fmt, vfs_conf)
        closers.insert(0, store.close)
        stats.add_source(lambda: _store_metrics(store))
        vfs = VFS(meta, store, vfs_conf, stats=stats)
        closers.remove(store.close)  # VFS.close() closes the store
    except BaseException:
        for fn in closers:
            try:
                fn()
            except Exception:  # noqa: BLE001
                pass
        raise
    vfs._closers.extend(closers)
    log.info("volume %s opened (session %d)", fmt.Name, meta.sid)
    return vfs


def _chunk_store(storage, fmt: "Format", conf: VFSConfig) -> ChunkStore:
    """The chunk store with the mount's cache (memory / disk / none), write-back and limits.
    RetryingStorage already retries transient errors io_retries times: the chunk store adds only
    a couple of PUT tries for other failures."""
    kw: dict = {"max_uploads": conf.max_uploads, "max_retries": 2}
    cc = conf.cache
    if cc is None:
        return ChunkStore.for_volume(storage, fmt, **kw)
    try:
        cc = dataclasses.replace(cc).checked()
    except ValueError as e:
        raise UserError(str(e)) from None
    tune_malloc()  # so that --buffer-size bounds the resident memory (limits.py)
    kw["max_downloads"] = cc.max_downloads
    disk = None
    if not cc.enabled or cc.memory:
        if cc.writeback:
            log.warning("writeback needs a disk cache (--cache-dir a directory, --cache-size > 0): disabled")
            cc.writeback = False
        kw["cache_size"] = cc.cache_size if cc.memory else 0
    else:
        from ..chunk.disk_cache import open_cache_manager

        disk = open_cache_manager(cc, fmt.UUID, buffer_size=conf.buffer_size, block_size=fmt.BlockSize << 10)
        # A small memory cache in front of the disk, inside the --buffer-size budget.
        kw["cache_size"] = min(conf.buffer_size // 4, 128 << 20)
    if not cc.writeback and (cc.upload_delay > 0 or cc.upload_hours):
        log.warning("delayed upload is disabled in non-writeback mode")
        cc.upload_delay, cc.upload_hours = 0.0, None
    try:
        return ChunkStore.for_volume(storage, fmt, conf=cc, disk=disk, **kw)
    except BaseException:
        if disk is not None:
            disk.close()
        raise


def _store_metrics(store: ChunkStore) -> dict[str, float]:
    out = {"juicefs_" + k: v for k, v in store.metrics().items()}
    out["pyjuicefs_staging_blocks"] = store.staging_blocks()
    return out


def background_jobs(vfs: VFS, stop: threading.Event) -> None:
    """Heartbeat every `heartbeat` seconds (and clean stale sessions); hourly, delete data of
    files whose deletion was delayed and expire the trash. The clean-ups are skipped when
    read-only or with no_bgjob (the heartbeat always runs)."""
    meta = vfs.meta
    cleanups = not meta.conf.read_only and not vfs.conf.no_bgjob
    hb = meta.conf.heartbeat if meta.conf.heartbeat > 0 else 12.0
    now = time.monotonic()
    next_hb = now + hb
    next_hourly = now + HOUR * (0.9 + 0.2 * random.random())  # jitter: clients do not run in step
    while not stop.wait(max(0.0, min(next_hb, next_hourly) - time.monotonic())):
        now = time.monotonic()
        if now >= next_hb:
            next_hb = now + hb
            _job("heartbeat", meta.refresh_session)
            if cleanups:
                _job("clean stale sessions", meta.clean_stale_sessions)
        if now >= next_hourly:
            next_hourly = now + HOUR
            if cleanups:
                _hourly(meta)


def _hourly(meta: Meta) -> None:
    _job("delete files", lambda: meta.process_delfiles(before=time.time() - DELETED_FILE_AGE))
    days = meta.get_format().TrashDays
    if days > 0:
        _job("clean up trash", lambda: meta.cleanup_trash(before=time.time() - days * 86400))


def _job(what: str, fn) -> None:
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - background work retries at its next turn
        log.warning("background %s: %s", what, e)
