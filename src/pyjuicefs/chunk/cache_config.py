"""Options of the block cache, write-back staging and data-path limits (JuiceFS chunk.Config).

Built by the CLI (cli/cache_options.py) or by tests; read by open_volume() and ChunkStore.
Defaults are JuiceFS 1.4's mount defaults.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

EVICTIONS = ("none", "2-random", "lru")
CHECKSUM_LEVELS = ("none", "full", "shrink", "extend")


def default_cache_dir() -> str:
    """JuiceFS: /var/jfsCache for root, $HOME/.juicefs/cache for anyone else."""
    if hasattr(os, "getuid") and os.getuid() == 0:
        return "/var/jfsCache"
    return os.path.join(os.path.expanduser("~"), ".juicefs", "cache")


@dataclass
class CacheConfig:
    cache_dirs: list[str] = field(default_factory=lambda: [default_cache_dir()])  # ["memory"]: in process memory
    cache_size: int = 102400 << 20  # bytes over all dirs; 0 disables the cache (and writeback)
    cache_items: int = 0  # max cached blocks over all dirs; 0: from the free-inode ratio
    free_space_ratio: float = 0.1
    cache_mode: int = 0o600
    cache_eviction: str = "2-random"
    verify_checksum: str = "extend"
    cache_partial_only: bool = False  # cache only blocks read partially (small/random reads)
    cache_large_write: bool = False  # cache full blocks written by this client too
    cache_expire: float = 0.0  # seconds without access before a cached block is dropped; 0: never
    writeback: bool = False
    upload_delay: float = 0.0  # seconds a staged block waits before its upload
    upload_hours: tuple[int, int] | None = None  # (start, end) hours in which delayed uploads run
    max_downloads: int = 200
    upload_limit: int = 0  # bytes per second; 0: unlimited
    download_limit: int = 0

    @property
    def memory(self) -> bool:
        return self.cache_dirs == ["memory"]

    @property
    def enabled(self) -> bool:
        return self.cache_size > 0

    def checked(self) -> "CacheConfig":
        """Validate choices (ValueError with one line)."""
        if self.cache_eviction not in EVICTIONS:
            raise ValueError(f"cache eviction {self.cache_eviction!r}: expected one of {', '.join(EVICTIONS)}")
        if self.verify_checksum not in CHECKSUM_LEVELS:
            raise ValueError(f"checksum level {self.verify_checksum!r}: expected one of {', '.join(CHECKSUM_LEVELS)}")
        if not 0 <= self.free_space_ratio < 1:
            raise ValueError(f"free space ratio {self.free_space_ratio} must be in [0, 1)")
        if not self.cache_dirs or any(not d for d in self.cache_dirs):
            raise ValueError("empty cache directory")
        return self
