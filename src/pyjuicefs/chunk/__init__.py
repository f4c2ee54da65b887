"""File data as slices and blocks in object storage (JuiceFS 1.4 layout).

store.ChunkStore writes/reads/removes slices given their ids; layout turns a chunk's slice records
into what a reader sees; readahead decides what to prefetch. Never imports pyjuicefs.meta.
"""

from .cache import BlockCache, SingleFlight
from ..layout import CHUNK_SIZE, Segment, build_slices, clip, compact_chunk, hole, overlay, visible
from .readahead import Readahead
from .store import ChunkStore, SliceWriter, zeros

__all__ = [
    "CHUNK_SIZE",
    "BlockCache",
    "ChunkStore",
    "Readahead",
    "Segment",
    "SingleFlight",
    "SliceWriter",
    "build_slices",
    "clip",
    "compact_chunk",
    "hole",
    "overlay",
    "visible",
    "zeros",
]
