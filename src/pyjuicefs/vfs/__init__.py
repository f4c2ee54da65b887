"""The VFS: POSIX file semantics over the metadata API and the chunk store (JuiceFS pkg/vfs).

`open_volume(meta_url, vfs_conf=...)` returns a ready VFS; the FUSE adapter calls its methods
(docs/dev/vfs.md describes the contract, the data paths and the locks).
"""

from .config import VFSConfig
from .internal import CONFIG_INODE, LOG_INODE, STATS_INODE, is_internal, is_special
from .setup import open_volume
from .vfs import VFS

__all__ = ["VFS", "VFSConfig", "open_volume", "is_internal", "is_special", "STATS_INODE", "CONFIG_INODE",
           "LOG_INODE"]
