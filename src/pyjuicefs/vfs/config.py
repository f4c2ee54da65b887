"""Runtime options of the VFS (one mount), as the FUSE adapter and the CLI pass them."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..chunk.cache_config import CacheConfig


@dataclass
class VFSConfig:
    attr_timeout: float = 1.0  # seconds the kernel may cache attributes (used by the FUSE adapter)
    entry_timeout: float = 1.0
    dir_entry_timeout: float = 1.0
    max_uploads: int = 20  # concurrent block PUTs
    buffer_size: int = 300 << 20  # bytes of write buffers (and 80% of it for readahead), as --buffer-size
    prefetch: int = 1  # threads that run readahead fetches (at least one while readahead is on)
    max_readahead: int = 0  # bytes per read stream; 0 = auto (buffer_size / 5, at least one block); < 0 = off
    read_only: bool = False
    enable_xattr: bool = False  # honoured by the FUSE adapter; the VFS always serves xattrs
    get_timeout: float = 60
    put_timeout: float = 60
    io_retries: int = 10
    hide_internal: bool = False  # leave .stats/.config/.accesslog/.trash out of root listings
    kernel_writeback_cache: bool = False  # -o writeback_cache: the kernel merges writes and sets offsets
    no_bgjob: bool = False  # JuiceFS --no-bgjob: heartbeat only, no clean-up of sessions/files/trash
    # block cache, write-back and limits (cli/cache_options.py); None: a 128 MiB memory cache only
    cache: CacheConfig | None = None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)
