"""Real FUSE mounts for the tests: `pyjuicefs mount` (or the reference `juicefs mount`) in a child
process, waited for until the kernel serves the mount point, and ALWAYS unmounted at teardown.

API (used by the other FUSE test files and oracles):
  pyjuicefs_mount(meta_url, mountpoint=None, *extra_args, env=None, timeout=30) -> Mount
  juicefs_mount(meta_url, mountpoint=None, *extra_args, env=None, timeout=30) -> Mount
The test formats the volume itself; the fixture only mounts. Mount.path, .proc, .umount(), .log().
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from services import pyjuicefs_cli as cli

MOUNT_TIMEOUT = 30.0


def _run(*argv: str, timeout: float = 15) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)


def is_mounted(path: str) -> bool:
    """Whether `path` is a mount point, from /proc/self/mounts: never stats the path, so it cannot
    hang on a stuck FUSE server."""
    target = os.path.realpath(path).replace(" ", "\\040")
    try:
        with open("/proc/self/mounts") as f:
            return any(line.split(" ")[1] == target for line in f if line.strip())
    except OSError:
        return os.path.ismount(path)


def wait_mounted(path: str, proc: subprocess.Popen | None, log_path: str, timeout: float = MOUNT_TIMEOUT) -> None:
    """Poll until `path` is a mount point whose root is a JuiceFS root (inode 1); fail the test with
    the mount's log if the process exits first or the timeout passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"mount process exited with {proc.returncode} before {path} was mounted:\n"
                        f"{_tail(log_path)}", pytrace=False)
        if is_mounted(path):
            try:
                if os.stat(path).st_ino == 1:
                    return
            except OSError:
                pass
        time.sleep(0.05)
    pytest.fail(f"{path} was not mounted within {timeout:.0f}s:\n{_tail(log_path)}", pytrace=False)


def _tail(log_path: str, lines: int = 40) -> str:
    try:
        return "\n".join(Path(log_path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def force_unmount(path: str, proc: subprocess.Popen | None, umount_cmd: list[str] | None = None) -> list[str]:
    """Unmount by every means, gentlest first: the client's own umount command (if any),
    `fusermount3 -u`, then a lazy `fusermount3 -u -z`; wait for the mount process, then SIGTERM it,
    then kill it (only that process: it was started in its own session). Returns what went wrong."""
    problems: list[str] = []
    for cmd in ([umount_cmd] if umount_cmd else []) + [["fusermount3", "-u", path]]:
        if not is_mounted(path):
            break
        r = _run(*cmd)
        if r.returncode != 0:
            problems.append(f"{' '.join(cmd)}: {r.stderr.strip() or r.returncode}")
    if is_mounted(path):
        _run("fusermount3", "-u", "-z", path)
        problems.append(f"{path} needed a lazy unmount")
    if proc is not None and proc.poll() is None:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            problems.append(f"mount process {proc.pid} did not exit after unmount: sending SIGTERM")
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                problems.append(f"mount process {proc.pid} killed")
                proc.kill()
                proc.wait(timeout=10)
    return problems


@dataclass
class Mount:
    path: str
    proc: subprocess.Popen
    meta_url: str
    log_path: str
    umount_cmd: list[str] | None = None
    problems: list[str] = field(default_factory=list)

    def umount(self) -> None:
        """Unmount and wait for the mount process to exit (fails loudly only at teardown)."""
        self.problems += force_unmount(self.path, self.proc, self.umount_cmd)

    @property
    def mounted(self) -> bool:
        return is_mounted(self.path)

    def log(self) -> str:
        """Everything the mount process wrote to stdout/stderr so far."""
        return Path(self.log_path).read_text(errors="replace")

    def __truediv__(self, other: str) -> Path:
        return Path(self.path) / other


Builder = Callable[[str, str, tuple[str, ...]], tuple[list[str], list[str] | None]]


def _factory(tmp_path_factory: pytest.TempPathFactory, build: Builder) -> Iterator[Callable[..., Mount]]:
    mounts: list[Mount] = []
    made_dirs: list[str] = []  # mount points this fixture created (removed with rmdir only)
    if not os.path.exists("/dev/fuse"):
        pytest.fail("/dev/fuse is missing: FUSE tests need a kernel with FUSE", pytrace=False)

    def make(meta_url: str, mountpoint: str | os.PathLike | None = None, *extra_args: str,
             env: dict[str, str] | None = None, timeout: float = MOUNT_TIMEOUT) -> Mount:
        if mountpoint is None:
            mp = tempfile.mkdtemp(prefix="pyjfs-mnt-")
            made_dirs.append(mp)
        else:
            mp = str(mountpoint)
        argv, umount_cmd = build(meta_url, mp, tuple(map(str, extra_args)))
        fd, log_path = tempfile.mkstemp(prefix="mount-", suffix=".log")
        with os.fdopen(fd, "wb") as logf:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                    env={**os.environ, **(env or {})}, start_new_session=True)
        m = Mount(mp, proc, meta_url, log_path, umount_cmd)
        mounts.append(m)
        if "-d" in extra_args or "--background" in extra_args:
            # A daemonizing client returns once the mount is up (or failed).
            try:
                rc = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pytest.fail(f"background mount of {mp} did not return within {timeout:.0f}s:\n{_tail(log_path)}",
                            pytrace=False)
            if rc != 0:
                pytest.fail(f"background mount of {mp} failed with {rc}:\n{_tail(log_path)}", pytrace=False)
            wait_mounted(mp, None, log_path, timeout)
        else:
            wait_mounted(mp, proc, log_path, timeout)
        return m

    yield make
    problems: list[str] = []
    for m in reversed(mounts):
        if m.proc.poll() is None or m.mounted:
            m.umount()
        problems += m.problems
        try:
            os.unlink(m.log_path)
        except OSError:
            pass
    for d in made_dirs:
        if not is_mounted(d):
            try:
                os.rmdir(d)  # never rmtree: a leftover mount would be emptied
            except OSError:
                pass
    if problems:
        print("mount teardown: " + "; ".join(problems), file=sys.stderr)


@pytest.fixture
def pyjuicefs_mount(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Mount]]:
    """Factory: pyjuicefs_mount(meta_url, mountpoint=None, *extra_args) -> Mount, running
    `python -m pyjuicefs mount META-URL MNT [args]` in the foreground."""

    def build(meta_url: str, mp: str, extra: tuple[str, ...]) -> tuple[list[str], list[str] | None]:
        # The disk cache goes to a temp dir unless the test chose one (the default, /var/jfsCache
        # as root, would fill up across runs), as the juicefs_mount fixture does.
        if not any(a == "--cache-dir" or a.startswith("--cache-dir=") for a in extra):
            extra = ("--cache-dir", str(tmp_path_factory.mktemp("pyjfscache")), *extra)
        return [sys.executable, "-m", "pyjuicefs", "mount", meta_url, mp, *extra], None

    yield from _factory(tmp_path_factory, build)


@pytest.fixture
def juicefs_mount(tmp_path_factory: pytest.TempPathFactory, juicefs_bin: str) -> Iterator[Callable[..., Mount]]:
    """Factory: juicefs_mount(meta_url, mountpoint=None, *extra_args) -> Mount, running the reference
    `juicefs mount META-URL MNT --no-usage-report` in the foreground (its cache in a temp dir)."""

    def build(meta_url: str, mp: str, extra: tuple[str, ...]) -> tuple[list[str], list[str] | None]:
        cache = str(tmp_path_factory.mktemp("jfscache"))
        argv = [juicefs_bin, "--no-agent", "mount", meta_url, mp, "--no-usage-report", "--cache-dir", cache, *extra]
        return argv, [juicefs_bin, "umount", mp]

    yield from _factory(tmp_path_factory, build)


# --- volumes for the mount tests ------------------------------------------------------------------

def format_pyjuicefs_volume(meta_url: str, bucket: str, name: str = "fusetest", *extra: str) -> None:
    """`pyjuicefs format META-URL NAME --storage file --bucket BUCKET [extra]`, or fail with its stderr."""
    p = subprocess.run([sys.executable, "-m", "pyjuicefs", "format", meta_url, name, "--storage", "file",
                        "--bucket", bucket, *extra], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]


@pytest.fixture
def volume(new_meta_url: Callable[[str], str], tmp_path: Path) -> Callable[..., str]:
    """volume(kind, *format_args) -> META-URL of a freshly formatted volume "fusetest" over a
    temp-dir bucket. No trash: with one (JuiceFS's default), an unlinked hard link lives on in
    .trash and keeps its nlink, as in JuiceFS, which local-fs comparisons do not expect."""

    def make(kind: str, *extra: str) -> str:
        url = new_meta_url(kind)
        bucket = tmp_path / f"bucket-{kind}-{len(list(tmp_path.iterdir()))}"
        bucket.mkdir()
        format_pyjuicefs_volume(url, str(bucket) + "/", "fusetest", "--trash-days", "0", *extra)
        return url

    return make


# --- background mounts (`pyjuicefs mount -d`), whose daemons outlive the command ---------------------

def daemon_pids(mountpoint: str) -> list[int]:
    """Pids of `pyjuicefs mount` processes whose command line ends with this mount point (the
    daemon gets it absolute), zombies excluded."""
    target = os.path.realpath(mountpoint)
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
            with open(f"/proc/{name}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in ("Z", "X") and "mount" in argv and argv and argv[-1] == target:
            pids.append(int(name))
    return pids


class BackgroundMounts:
    """Runs `pyjuicefs mount -d` and cleans up after it: every mount point it was given is
    unmounted at teardown and the daemons serving it (found by their command line, which holds
    that unique temp path) are waited for, then terminated by pid."""

    cli = staticmethod(cli)
    daemon_pids = staticmethod(daemon_pids)
    is_mounted = staticmethod(is_mounted)

    def __init__(self, log_path: str, cache_dir: str) -> None:
        self.log_path = log_path
        self.cache_dir = cache_dir  # passed unless the test gives one (never /var/jfsCache)
        self.mountpoints: list[str] = []

    @staticmethod
    def fstype(mountpoint: str | os.PathLike) -> str | None:
        """The fs type of the topmost mount at `mountpoint` (from /proc/self/mounts), or None."""
        target = os.path.realpath(mountpoint).replace(" ", "\\040")
        found = None
        with open("/proc/self/mounts") as f:
            for line in f:
                fields = line.split(" ")
                if len(fields) > 2 and fields[1] == target:
                    found = fields[2]
        return found

    def watch(self, mountpoint: str | os.PathLike) -> str:
        mp = os.path.realpath(mountpoint)
        if mp not in self.mountpoints:
            self.mountpoints.append(mp)
        return mp

    def mount(self, meta_url: str, mountpoint: str | os.PathLike, *extra: str, env: dict[str, str] | None = None,
              timeout: float = 120) -> subprocess.CompletedProcess:
        """`pyjuicefs mount -d META MNT --log <test log> [--cache-dir <temp>] EXTRA` (not checked:
        the test asserts)."""
        mp = self.watch(mountpoint)
        if not any(a == "--cache-dir" or a.startswith("--cache-dir=") for a in extra):
            extra = ("--cache-dir", self.cache_dir, *extra)
        return cli("mount", "-d", meta_url, mp, "--log", self.log_path, *extra, env=env, timeout=timeout)

    def log(self) -> str:
        try:
            return Path(self.log_path).read_text(errors="replace")
        except OSError:
            return ""

    def cleanup(self) -> list[str]:
        problems: list[str] = []
        for mp in reversed(self.mountpoints):
            pids = daemon_pids(mp)
            if is_mounted(mp):
                problems += force_unmount(mp, None)
            deadline = time.monotonic() + 20
            while pids and time.monotonic() < deadline:
                pids = [p for p in pids if p in daemon_pids(mp)]
                time.sleep(0.1)
            for sig in (signal.SIGTERM, signal.SIGKILL):
                for pid in pids:
                    problems.append(f"daemon {pid} of {mp} still running: {signal.Signals(sig).name}")
                    try:
                        os.kill(pid, sig)
                    except ProcessLookupError:
                        pass
                end = time.monotonic() + 10
                while pids and time.monotonic() < end:
                    pids = [p for p in pids if p in daemon_pids(mp)]
                    time.sleep(0.1)
        return problems


@pytest.fixture
def background_mounts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackgroundMounts]:
    """BackgroundMounts with the daemon log in a temp dir; leftover mounts and daemons are
    cleaned up (and reported) at teardown."""
    bm = BackgroundMounts(str(tmp_path_factory.mktemp("bglog") / "pyjuicefs.log"),
                          str(tmp_path_factory.mktemp("bgcache")))
    try:
        yield bm
    finally:
        problems = bm.cleanup()
        if problems:
            print("background mount teardown: " + "; ".join(problems), file=sys.stderr)
