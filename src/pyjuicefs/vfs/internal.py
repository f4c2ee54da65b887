"""The virtual files in the root of a mount, with JuiceFS's names and inode numbers
(pkg/vfs/internal.go): `.accesslog`, `.stats`, `.config`, and `.trash` (served by meta).

`.accesslog` (JuiceFS pkg/vfs/accesslog.go): while a reader has it open, every FUSE request is
logged as one line in JuiceFS's format and streamed to each reader through a bounded buffer
(lines are dropped when a reader falls 10240 lines behind); with no reader nothing is formatted.
The FUSE adapter feeds AccessLog.log and serves reads of the file from AccessLog.read.

`.control` (JuiceFS's command channel for `juicefs info/rmr/warmup`) is reserved but not served:
lookups of it fail with ENOENT, so the reference CLI sees that this is not its own mount.
"""

from __future__ import annotations

import json
import os
import queue
import stat
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from ..meta.types import TRASH_INODE, TYPE_DIRECTORY, TYPE_FILE, Attr

MIN_INTERNAL_INODE = 0x7FFFFFFF00000000
LOG_INODE = MIN_INTERNAL_INODE + 1
CONTROL_INODE = MIN_INTERNAL_INODE + 2
STATS_INODE = MIN_INTERNAL_INODE + 3
CONFIG_INODE = MIN_INTERNAL_INODE + 4

# name -> (inode, permission bits), in JuiceFS's listing order (after .control, which is not listed)
NODES: dict[bytes, tuple[int, int]] = {
    b".accesslog": (LOG_INODE, 0o400),
    b".stats": (STATS_INODE, 0o444),
    b".config": (CONFIG_INODE, 0o400),
    b".trash": (TRASH_INODE, 0o555),
}
SERVED_FILES = {LOG_INODE, STATS_INODE, CONFIG_INODE}
RESERVED_NAMES = set(NODES) | {b".control"}


def is_special(ino: int) -> bool:
    """JuiceFS IsSpecialNode: internal files and the trash directories."""
    return ino >= MIN_INTERNAL_INODE


def is_internal(ino: int) -> bool:
    """An internal file served by the VFS itself (the FUSE adapter opens these with direct_io:
    their length attribute is 0 except for .config)."""
    return ino in SERVED_FILES


def is_reserved_name(parent: int, name: bytes) -> bool:
    return parent == 1 and name in RESERVED_NAMES


def node_attrs() -> dict[int, Attr]:
    """Attributes of the internal files, owned by this process's user, stamped now."""
    now = int(time.time())
    uid = os.getuid() if hasattr(os, "getuid") else 0
    gid = os.getgid() if hasattr(os, "getgid") else 0
    out: dict[int, Attr] = {}
    for ino, mode in NODES.values():
        if ino == TRASH_INODE:
            a = Attr(typ=TYPE_DIRECTORY, mode=mode, nlink=2, length=4 << 10, parent=1)
        else:
            a = Attr(typ=TYPE_FILE, mode=mode, nlink=1, uid=uid, gid=gid, parent=1)
        a.atime = a.mtime = a.ctime = now
        out[ino] = a
    return out


def config_json(conf: dict[str, object]) -> bytes:
    """`.config`: the running configuration, indented one space as JuiceFS's MarshalIndent(v, "", " ")."""
    return json.dumps(conf, indent=" ", default=str).encode()


# --- the access log ------------------------------------------------------------------------------

class _LogReader:
    def __init__(self, size: int) -> None:
        self.lines: queue.Queue[bytes] = queue.Queue(size)
        self.last = b""  # the rest of a line that did not fit in the previous read
        self.lock = threading.Lock()


class AccessLog:
    """The readers of `.accesslog` (by file handle) and the lines logged for them."""

    BUFFER_LINES = 10240  # per reader, as JuiceFS's channel
    READ_WAIT = 1.0  # a read returns what came within this many seconds ("#\n" if nothing)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._readers: dict[int, _LogReader] = {}

    @property
    def active(self) -> bool:
        """Whether anyone reads the log (checked without a lock on every request)."""
        return bool(self._readers)

    def is_reader(self, fh: int) -> bool:
        return fh in self._readers

    def open(self, fh: int) -> None:
        with self._lock:
            self._readers = {**self._readers, fh: _LogReader(self.BUFFER_LINES)}

    def close(self, fh: int) -> None:
        with self._lock:
            if fh in self._readers:
                self._readers = {k: v for k, v in self._readers.items() if k != fh}

    def log(self, uid: int, gid: int, pid: int, text: str, seconds: float) -> None:
        """One request: `<time> [uid:U,gid:G,pid:P] <text> <seconds>`, to every reader (a full
        buffer drops the line, as JuiceFS does)."""
        readers = self._readers  # replaced, never mutated: no lock needed to iterate
        if not readers:
            return
        ts = datetime.now().strftime("%Y.%m.%d %H:%M:%S.%f")
        line = f"{ts} [uid:{uid},gid:{gid},pid:{pid}] {text} <{seconds:.6f}>\n".encode(errors="surrogateescape")
        for r in readers.values():
            try:
                r.lines.put_nowait(line)
            except queue.Full:
                pass

    def read(self, fh: int, size: int) -> bytes:
        """Up to `size` bytes of logged lines: waits until the buffer is full or READ_WAIT passed."""
        r = self._readers.get(fh)
        if r is None or size <= 0:
            return b""
        with r.lock:
            out = bytearray(r.last[:size])
            r.last = r.last[len(out):]
            deadline = time.monotonic() + self.READ_WAIT
            while len(out) < size:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    line = r.lines.get(timeout=left)
                except queue.Empty:
                    break
                room = size - len(out)
                out += line[:room]
                if len(line) > room:
                    r.last = line[room:]
                    break
            return bytes(out) if out else b"#\n"[:size]


def strerr(err: int) -> str:
    """JuiceFS's strerr: OK, or Go's text of the errno (glibc's, first letter lower case)."""
    if not err:
        return "OK"
    try:
        s = os.strerror(err)
    except ValueError:
        return f"errno {err}"
    return s[:1].lower() + s[1:]


_TYPE_CHARS = {stat.S_IFREG: "-", stat.S_IFDIR: "d", stat.S_IFLNK: "l", stat.S_IFIFO: "p", stat.S_IFSOCK: "s",
               stat.S_IFBLK: "b", stat.S_IFCHR: "c"}


def smode(mode: int) -> str:
    """`drwxr-xr-x` as JuiceFS's smode (`?` when the mode has no type bits; s/S, t/T)."""
    s = [_TYPE_CHARS.get(stat.S_IFMT(mode), "?")]
    for shift, special, ch in ((6, stat.S_ISUID, "s"), (3, stat.S_ISGID, "s"), (0, stat.S_ISVTX, "t")):
        bits = (mode >> shift) & 7
        x = bits & 1
        s += ["r" if bits & 4 else "-", "w" if bits & 2 else "-"]
        if mode & special:
            s.append(ch if x else ch.upper())
        else:
            s.append("x" if x else "-")
    return "".join(s)


def _name(b: Any) -> str:
    return b.decode(errors="surrogateescape") if isinstance(b, (bytes, bytearray)) else str(b)


def _entry(a: Any) -> str:
    """` (ino,[mode:0MODE,nlink,uid,gid,atime,mtime,ctime,length])` of pyfuse3 EntryAttributes."""
    if a is None:
        return ""
    m = a.st_mode
    return (f" ({a.st_ino},[{smode(m)}:0{m:06o},{a.st_nlink},{a.st_uid},{a.st_gid},{a.st_atime_ns // 10**9},"
            f"{a.st_mtime_ns // 10**9},{a.st_ctime_ns // 10**9},{a.st_size}])")


def _mode(m: int) -> str:
    return f"{smode(m)}:0{m:04o}"


def _setattr(a: tuple, r: Any, ino: Callable[[int], int]) -> str:
    attr, f = a[1], a[2]
    mask, parts = 0, []
    if f.update_mode:
        mask |= 1
        parts.append(f"mode={smode(attr.st_mode)}:0{stat.S_IMODE(attr.st_mode):04o}")
    if f.update_uid:
        mask |= 2
        parts.append(f"uid={attr.st_uid}")
    if f.update_gid:
        mask |= 4
        parts.append(f"gid={attr.st_gid}")
    if f.update_atime:
        mask |= 16
        parts.append(f"atime={attr.st_atime_ns // 10**9}")
    if f.update_mtime:
        mask |= 32
        parts.append(f"mtime={attr.st_mtime_ns // 10**9}")
    if f.update_size:
        mask |= 8
        parts.append(f"size={attr.st_size}")
    return f"({a[0]}[{a[3] or 0}],0x{mask:X},[{','.join(parts)}]):{_entry(r)}"


def _statfs(a: tuple, r: Any, ino: Callable[[int], int]) -> str:
    if r is None:
        return "(1)"
    bs = r.f_frsize or 4096
    return f"(1): ({(r.f_blocks - r.f_bavail) * bs},{r.f_bavail * bs},{r.f_files - r.f_ffree},{r.f_ffree})"


_FLOCKS = {1: "LOCKSH", 2: "LOCKEX", 8: "UNLOCK"}  # fcntl.LOCK_SH/EX/UN
_LTYPES = {0: "R", 1: "W", 2: "U"}  # F_RDLCK, F_WRLCK, F_UNLCK
MAX_LOCK_END = 0x7FFFFFFFFFFFFFFF


def _flock(a: tuple, r: Any, ino: Callable[[int], int]) -> str:
    op = a[2]
    return f"({ino(a[0])},{a[0]},{a[1] & (2**64 - 1):016X},{_FLOCKS.get(op & ~4, 'X')},{str(not op & 4).lower()})"


def _getlk(a: tuple, r: Any, ino: Callable[[int], int]) -> str:
    head = f"({ino(a[0])},{a[0]},{a[1] & (2**64 - 1):016X})"
    if r is None:
        return head
    return f"{head}: ({r.l_start},{r.l_len},{_LTYPES.get(r.l_type, 'X')},{r.l_pid})"


def _setlk(a: tuple, r: Any, ino: Callable[[int], int]) -> str:
    lk, sleep = a[2], a[3]
    start = max(0, lk.l_start)
    end = MAX_LOCK_END if lk.l_len <= 0 else start + lk.l_len - 1
    return (f"({ino(a[0])},{a[0]},{a[1] & (2**64 - 1):016X},{start},{end},{_LTYPES.get(lk.l_type, 'X')},"
            f"{str(bool(sleep)).lower()},{lk.l_pid})")


# op -> (handler args, result, fh -> inode) -> the text between the op name and " - <error>", as
# JuiceFS's logit formats it (pkg/vfs/vfs.go, vfs_unix.go). Args are pyfuse3's handler arguments.
LOG_FORMATS: dict[str, Callable[[tuple, Any, Callable[[int], int]], str]] = {
    "lookup": lambda a, r, i: f"({a[0]},{_name(a[1])}):{_entry(r)}",
    "getattr": lambda a, r, i: f"({a[0]}):{_entry(r)}",
    "setattr": _setattr,
    "readlink": lambda a, r, i: f"({a[0]}): ({_name(r or b'')})",
    "mknod": lambda a, r, i: f"({a[0]},{_name(a[1])},{_mode(a[2])},0x{a[3]:08X}):{_entry(r)}",
    # pyfuse3 adds S_IFDIR to mkdir's mode; the kernel (and so JuiceFS) sends the bare permissions
    "mkdir": lambda a, r, i: f"({a[0]},{_name(a[1])},{_mode(a[2] & 0o7777)}):{_entry(r)}",
    "unlink": lambda a, r, i: f"({a[0]},{_name(a[1])})",
    "rmdir": lambda a, r, i: f"({a[0]},{_name(a[1])})",
    "symlink": lambda a, r, i: f"({a[0]},{_name(a[1])},{_name(a[2])}):{_entry(r)}",
    "rename": lambda a, r, i: f"({a[0]},{_name(a[1])},{a[2]},{_name(a[3])},{a[4]})",
    "link": lambda a, r, i: f"({a[0]},{a[1]},{_name(a[2])}):{_entry(r)}",
    "open": lambda a, r, i: f"({a[0]},0x{a[1]:X})" + (f" [fh:{r.fh}]" if r is not None else ""),
    "create": lambda a, r, i: (f"({a[0]},{_name(a[1])},{_mode(a[2])}):{_entry(r[1] if r else None)}"
                               + (f" [fh:{r[0].fh}]" if r else "")),
    "read": lambda a, r, i: f"({i(a[0])},{a[2]},{a[1]},{a[0]}): ({len(r) if r is not None else 0})",
    "write": lambda a, r, i: f"({i(a[0])},{len(a[2])},{a[1]},{a[0]})",
    "flush": lambda a, r, i: f"({i(a[0])},{a[0]},{0:016X})",  # pyfuse3 does not pass the lock owner
    "fsync": lambda a, r, i: f"({i(a[0])},{int(bool(a[1]))})",
    "release": lambda a, r, i: f"({i(a[0])},{a[0]})",
    "opendir": lambda a, r, i: f"({a[0]})" + (f" [fh:{r}]" if r is not None else ""),
    "readdir": lambda a, r, i: f"({i(a[0])},0,{a[1]},true)",  # size and count are the kernel's
    "releasedir": lambda a, r, i: f"({i(a[0])})",
    "statfs": _statfs,
    "getxattr": lambda a, r, i: f"({a[0]},{_name(a[1])},0): ({len(r) if r is not None else 0})",
    "setxattr": lambda a, r, i: f"({a[0]},{_name(a[1])},{len(a[2])},0)",
    "listxattr": lambda a, r, i: f"({a[0]},0): ({sum(len(x) + 1 for x in r) if r else 0})",
    "removexattr": lambda a, r, i: f"({a[0]},{_name(a[1])})",
    "flock": _flock,
    "getlk": _getlk,
    "setlk": _setlk,
    "fallocate": lambda a, r, i: f"({i(a[0])},{a[1]},{a[2]},{a[3]})",
    "copy_file_range": lambda a, r, i: f"({i(a[0])},{a[1]},{i(a[2])},{a[3]},{a[4]},{a[5]}): ({r or 0})",
}


def describe(op: str, args: tuple, result: Any, err: int, ino_of: Callable[[int], int]) -> str:
    """`<op> <args>[: <result>] - <OK|error>`, the body of an access log line."""
    fmt = LOG_FORMATS.get(op)
    try:
        body = fmt(args, result, ino_of) if fmt is not None else ""
    except Exception as e:  # noqa: BLE001 - a log line must never fail a request
        body = f"(? {type(e).__name__})"
    return f"{op} {body} - {strerr(err)}" if body else f"{op} - {strerr(err)}"

