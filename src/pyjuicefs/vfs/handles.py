"""Open files and directories: file handles (fh numbers) and the per-inode state they share."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..meta.types import Entry

if TYPE_CHECKING:
    from .reader import FileReader
    from .writer import FileWriter


class FileState:
    """What the handles of one open inode share. `lock` guards length/gen/slices/readers (held
    briefly, never during I/O); `wlock` serialises the operations that change data (write,
    truncate, fallocate, copy_file_range) so O_APPEND offsets and flush-then-truncate are atomic."""

    def __init__(self, ino: int, length: int) -> None:
        self.ino = ino
        self.refs = 0  # open handles (guarded by the VFS handle lock)
        self.length = length  # what reads see: committed length and own writes
        self.writer: FileWriter | None = None
        self.gen = 0  # bumped on every change of committed data; stale caches are dropped
        self.slices: dict[int, list] = {}  # chunk index -> visible segments (reader.py)
        self.readers: set[FileReader] = set()
        self.lock = threading.Lock()
        self.wlock = threading.Lock()

    def invalidate(self) -> None:
        """Committed data changed: forget cached slices and prefetched pieces."""
        with self.lock:
            self.gen += 1
            self.slices.clear()
            readers = list(self.readers)
        for r in readers:
            r.invalidate()

    def set_length(self, length: int) -> None:
        with self.lock:
            self.length = length

    def grow(self, length: int) -> bool:
        """Raise the length to at least `length`; True if it grew."""
        with self.lock:
            if length > self.length:
                self.length = length
                return True
            return False


@dataclass(eq=False)
class Handle:
    fh: int
    ino: int
    flags: int = 0
    st: FileState | None = None  # regular files
    reader: FileReader | None = None
    data: bytes | None = None  # internal files: the content snapshot taken at open
    is_dir: bool = False
    entries: list[Entry] | None = None  # directories: listing snapshot (offsets index into it)
    flock_owner: int = 0
    has_flock: bool = False
    has_posix: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def readable(self) -> bool:
        return self.flags & os.O_ACCMODE in (os.O_RDONLY, os.O_RDWR)

    @property
    def writable(self) -> bool:
        return self.flags & os.O_ACCMODE in (os.O_WRONLY, os.O_RDWR)

    @property
    def append(self) -> bool:
        return bool(self.flags & os.O_APPEND)
