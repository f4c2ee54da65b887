"""Helpers shared by the FUSE oracle tests: snapshot a directory tree, compare two snapshots, run a call
and capture its outcome (value or errno), and format a volume with either client.

A snapshot holds what a POSIX client can observe without timestamps: file type, permission bits, owner,
size, nlink, content digest, symlink target, user xattrs, and which names are hard links of one another.
Directory sizes are left out (they are file-system specific); directory nlink is kept.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import subprocess
import sys
from dataclasses import dataclass
from typing import Any, Callable

# Virtual entries a JuiceFS mount shows in its root; never part of what a test wrote.
MOUNT_ROOT_SPECIALS = frozenset({".trash", ".stats", ".config", ".accesslog", ".control"})


@dataclass(frozen=True, slots=True)
class Node:
    kind: str                      # "file", "dir", "symlink" or "other"
    mode: int                      # permission bits (S_IMODE)
    nlink: int
    uid: int = 0
    gid: int = 0
    size: int | None = None        # files and symlinks only
    digest: str | None = None      # sha256 of a file's bytes
    target: str | None = None      # a symlink's target
    xattrs: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True, slots=True)
class Snapshot:
    nodes: dict[str, Node]                  # relative path -> node ("" is the root)
    links: frozenset[frozenset[str]]        # groups (size > 1) of paths sharing an inode

    def __str__(self) -> str:
        lines = [f"{p or '.'}: {n}" for p, n in sorted(self.nodes.items())]
        lines += [f"hardlinks: {sorted(g)}" for g in sorted(self.links, key=sorted)]
        return "\n".join(lines)


def sha256_file(path: str, bufsize: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(bufsize):
            h.update(chunk)
    return h.hexdigest()


def read_xattrs(path: str) -> tuple[tuple[str, bytes], ...]:
    """The user.* xattrs of path (not following symlinks), sorted; () where xattrs are unsupported."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
            return ()
        raise
    return tuple(sorted((n, os.getxattr(path, n, follow_symlinks=False))
                        for n in names if n.startswith("user.")))


def node_of(path: str, *, xattrs: bool = True) -> tuple[Node, int]:
    """The node at path and its inode number."""
    st = os.lstat(path)
    xa = read_xattrs(path) if xattrs else ()
    common = dict(mode=stat.S_IMODE(st.st_mode), nlink=st.st_nlink, uid=st.st_uid, gid=st.st_gid)
    if stat.S_ISREG(st.st_mode):
        node = Node("file", **common, size=st.st_size, digest=sha256_file(path), xattrs=xa)
    elif stat.S_ISDIR(st.st_mode):
        node = Node("dir", **common, xattrs=xa)
    elif stat.S_ISLNK(st.st_mode):
        node = Node("symlink", **common, size=st.st_size, target=os.readlink(path))
    else:
        node = Node("other", **common, xattrs=xa)
    return node, st.st_ino


def snapshot(root: str, *, xattrs: bool = True, skip_root: frozenset[str] = MOUNT_ROOT_SPECIALS) -> Snapshot:
    """Walk root (never following symlinks) and record every entry below it."""
    nodes: dict[str, Node] = {}
    by_ino: dict[int, set[str]] = {}

    def visit(rel: str) -> None:
        full = os.path.join(root, rel) if rel else root
        node, ino = node_of(full, xattrs=xattrs)
        nodes[rel] = node
        if node.kind != "dir":
            by_ino.setdefault(ino, set()).add(rel)
            return
        for name in sorted(os.listdir(full)):
            if not rel and name in skip_root:
                continue
            visit(os.path.join(rel, name) if rel else name)

    visit("")
    links = frozenset(frozenset(g) for g in by_ino.values() if len(g) > 1)
    return Snapshot(nodes, links)


def diff(a: Snapshot, b: Snapshot, names: tuple[str, str] = ("a", "b")) -> list[str]:
    """Human-readable differences between two snapshots; [] when they match."""
    out: list[str] = []
    na, nb = names
    for p in sorted(a.nodes.keys() | b.nodes.keys()):
        x, y = a.nodes.get(p), b.nodes.get(p)
        if x is None or y is None:
            out.append(f"{p or '.'}: only in {na if y is None else nb}")
        elif x != y:
            fields = [f for f in Node.__slots__ if getattr(x, f) != getattr(y, f)]
            out.append(f"{p or '.'}: " + ", ".join(f"{f} {getattr(x, f)!r} ({na}) != {getattr(y, f)!r} ({nb})"
                                                   for f in fields))
    if a.links != b.links:
        out.append(f"hard-link groups differ: {sorted(map(sorted, a.links))} ({na}) != "
                   f"{sorted(map(sorted, b.links))} ({nb})")
    return out


def assert_same_tree(a: Snapshot, b: Snapshot, names: tuple[str, str] = ("a", "b")) -> None:
    problems = diff(a, b, names)
    assert not problems, "trees differ:\n  " + "\n  ".join(problems)


# --- outcomes -------------------------------------------------------------------------------------

def outcome(fn: Callable[..., Any], *args: Any, **kw: Any) -> tuple[str, Any]:
    """("ok", value) or ("err", errno name): what a caller sees, comparable across file systems."""
    try:
        return "ok", fn(*args, **kw)
    except OSError as e:
        return "err", errno.errorcode.get(e.errno, str(e.errno)) if e.errno is not None else repr(e)


# --- volumes --------------------------------------------------------------------------------------

def client_argv(client: str, juicefs_bin: str = "juicefs") -> list[str]:
    """argv prefix of a client: "pyjuicefs" (this package, in this Python) or "juicefs" (reference)."""
    if client == "pyjuicefs":
        return [sys.executable, "-m", "pyjuicefs"]
    if client == "juicefs":
        return [juicefs_bin]
    raise ValueError(f"unknown client {client!r}")


def run_client(client: str, *args: str, juicefs_bin: str = "juicefs", timeout: float = 120,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    argv = client_argv(client, juicefs_bin) + [str(a) for a in args]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})
    return p


def format_volume(client: str, meta_url: str, name: str, *storage_args: str,
                  juicefs_bin: str = "juicefs", env: dict[str, str] | None = None) -> None:
    """Format a volume with either client; raise with its stderr if that fails."""
    p = run_client(client, "format", meta_url, name, *storage_args, juicefs_bin=juicefs_bin, env=env)
    if p.returncode != 0:
        raise AssertionError(f"{client} format failed ({p.returncode}):\n{p.stderr[-3000:]}")


# --- mounts ---------------------------------------------------------------------------------------

def is_mounted(path: str) -> bool:
    real = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == real for line in f)


class ClientMount:
    """A foreground `mount` of either client in a child process; umount() always leaves nothing behind.

    Same shape as the conftest fixtures' Mount (.path, .proc, .umount()), for code outside pytest
    (benchmarks/bench_mount.py); tests use the fixtures.
    """

    def __init__(self, client: str, meta_url: str, path: str, *extra_args: str, juicefs_bin: str = "juicefs",
                 log_path: str | None = None, timeout: float = 60, env: dict[str, str] | None = None) -> None:
        self.client, self.path = client, path
        os.makedirs(path, exist_ok=True)
        self.log_path = log_path or f"{path.rstrip('/')}.{client}.log"
        args = list(extra_args)
        if client == "juicefs":
            args += ["--no-usage-report", "--no-syslog"]
        argv = client_argv(client, juicefs_bin) + (["--no-agent"] if client == "juicefs" else [])
        argv += ["mount", meta_url, path, *args]
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                                     env={**os.environ, **(env or {})}, start_new_session=True)
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.umount()
            raise

    def _wait_ready(self, timeout: float) -> None:
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.client} mount exited with {self.proc.returncode}:\n{self.log_tail()}")
            if is_mounted(self.path):
                try:
                    if os.stat(self.path).st_ino == 1:
                        return
                except OSError:
                    pass
            time.sleep(0.05)
        raise AssertionError(f"{self.client} mount not ready after {timeout}s:\n{self.log_tail()}")

    def log_tail(self, n: int = 30) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-n:]).decode(errors="replace")
        except OSError:
            return ""

    def umount(self) -> None:
        """Unmount (lazily if busy), wait for the process, kill it if it lingers. Idempotent."""
        if is_mounted(self.path):
            r = subprocess.run(["fusermount3", "-u", self.path], capture_output=True)
            if r.returncode != 0 and is_mounted(self.path):
                subprocess.run(["fusermount3", "-uz", self.path], capture_output=True)
        if self.proc.poll() is None:
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        if not self._log.closed:
            self._log.close()

    def __enter__(self) -> "ClientMount":
        return self

    def __exit__(self, *exc: object) -> None:
        self.umount()


# --- a sample tree ----------------------------------------------------------------------------------

MiB = 1 << 20
CHUNK = 64 * MiB  # JuiceFS chunk size: slices never cross it


def write_sample_tree(root: str, *, big_size: int = 0, sparse_size: int = 9 * MiB, seed: int = 0,
                      small_files: int = 12, xattrs: bool = True) -> None:
    """Write a deterministic tree under root (which must exist): small files of assorted sizes and modes,
    an optional big file written in 1 MiB requests then overwritten at random offsets (some across
    block and chunk boundaries), a sparse file, symlinks (one dangling), a hard link, user xattrs.
    The same arguments give the same tree on any file system, so a local copy is the expected state."""
    import random

    rng = random.Random(seed)
    os.makedirs(os.path.join(root, "small"))
    os.makedirs(os.path.join(root, "deep", "er", "est"))
    for i in range(small_files):
        size = rng.choice((0, 1, 100, 4095, 4096, 65537, rng.randrange(1, 300_000)))
        p = os.path.join(root, "small", f"f{i}")
        with open(p, "wb") as f:
            f.write(rng.randbytes(size))
        os.chmod(p, rng.choice((0o644, 0o600, 0o755, 0o444)))
    with open(os.path.join(root, "deep", "er", "est", "leaf"), "wb") as f:
        f.write(b"leaf\n" * 1000)
    os.chmod(os.path.join(root, "deep", "er"), 0o750)
    if big_size:
        data = bytearray(rng.randbytes(big_size))
        path = os.path.join(root, "big")
        with open(path, "wb") as f:
            for off in range(0, big_size, MiB):
                f.write(data[off:off + MiB])
        edges = [4 * MiB - 7, CHUNK - 100, CHUNK - 1, 8 * MiB]
        offsets = [e for e in edges if e < big_size] + [rng.randrange(0, big_size) for _ in range(12)]
        fd = os.open(path, os.O_WRONLY)
        try:
            for off in offsets:
                piece = rng.randbytes(min(rng.randrange(1, 2 * MiB), big_size - off))
                os.pwrite(fd, piece, off)
                data[off:off + len(piece)] = piece
        finally:
            os.close(fd)
    if sparse_size:
        path = os.path.join(root, "sparse")
        with open(path, "wb") as f:
            f.write(b"head")
            f.seek(sparse_size // 2 + 12345)
            f.write(b"middle")
            f.truncate(sparse_size)
    os.symlink("small/f1", os.path.join(root, "link"))
    os.symlink("does/not/exist", os.path.join(root, "dangling"))
    os.link(os.path.join(root, "small", "f2"), os.path.join(root, "hard"))
    if xattrs:
        os.setxattr(os.path.join(root, "small", "f3"), "user.k", b"value")
        os.setxattr(os.path.join(root, "small", "f3"), "user.bin", bytes(range(256)))
        os.setxattr(os.path.join(root, "deep"), "user.dir", b"d")
