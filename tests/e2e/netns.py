"""Several "hosts" on this machine: one network namespace each, wired to a bridge in a "switch"
namespace, with private addresses that exist only inside those namespaces.

    with Network(["srv", "c1", "c2"]) as net:
        net["srv"].popen(["redis-server", "--bind", net["srv"].addr, ...])
        net["c1"].run([sys.executable, "-m", "pyjuicefs", "mount", "-d", ...])

Commands run through `nsenter --net=/run/netns/NS`, which switches the network namespace ONLY.
(`ip netns exec` also unshares the mount namespace, so a FUSE mount made under it would be
invisible to the test and to a later `pyjuicefs umount`.) So every mount made from a host is in
the machine's mount table: give each host its own mount points.

Nothing here touches the machine's own network: the veth pairs are created directly inside
the namespaces (`ip link add ... netns`), the subnet is picked to overlap no route or address
of the default namespace, and the hosts have no route out. Tear-down runs whatever happens
(context manager, an atexit hook, and a sweep of namespaces left by a killed run): unmount the
FUSE mounts the hosts serve, stop their processes (only pids inside these namespaces), delete
the namespaces (their interfaces and the bridge go with them).
"""

from __future__ import annotations

import atexit
import ipaddress
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

PREFIX = "pjtw"  # pjt + w(alkthrough); a name is pjtw<creator pid>x<hex>-<label>
_NAME = re.compile(rf"^{PREFIX}(\d+)x[0-9a-f]+-")
SUBNET_POOL = [ipaddress.ip_network(f"10.231.{i}.0/24") for i in range(1, 255)]
_live: list["Network"] = []


class NetnsError(Exception):
    """Network namespaces cannot be made here; the message says why and what to do."""


def _ip(*args: str, check: bool = True, timeout: float = 20) -> subprocess.CompletedProcess:
    p = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise NetnsError(f"`ip {' '.join(args)}` failed ({p.returncode}): {p.stderr.strip()}")
    return p


def require_netns() -> None:
    """Raise NetnsError unless this process can make namespaces (root, iproute2, nsenter)."""
    if os.geteuid() != 0:
        raise NetnsError("the multi-host test needs root (ip netns add); run it as root, as CI does")
    for tool, pkg in (("ip", "iproute2"), ("nsenter", "util-linux"), ("fusermount3", "fuse3")):
        if shutil.which(tool) is None:
            raise NetnsError(f"`{tool}` is not installed (apt-get install {pkg})")
    probe = f"{PREFIX}{os.getpid()}x{uuid.uuid4().hex[:6]}-probe"
    try:
        _ip("netns", "add", probe)
    except NetnsError as e:
        raise NetnsError(f"network namespaces are not available here ({e}); the test needs "
                         f"`ip netns add` to work (a kernel with CONFIG_NET_NS, CAP_SYS_ADMIN)") from None
    finally:
        _ip("netns", "del", probe, check=False)


def pick_subnet(pool: Sequence[ipaddress.IPv4Network] = SUBNET_POOL) -> ipaddress.IPv4Network:
    """A /24 from the pool overlapping none of the default namespace's routes or addresses (the
    default route aside), chosen at random so that concurrent runs rarely share one (they could:
    each run's namespaces are separate networks)."""
    used: list[ipaddress.IPv4Network] = []
    for args in (("-4", "route", "show", "table", "all"), ("-4", "-o", "addr", "show")):
        for line in _ip(*args, check=False).stdout.splitlines():
            for word in line.split():
                if word == "default" or not re.fullmatch(r"\d+\.\d+\.\d+\.\d+(/\d+)?", word):
                    continue
                try:
                    used.append(ipaddress.ip_network(word, strict=False))
                except ValueError:
                    pass
    free = [n for n in pool if not any(n.overlaps(u) for u in used)]
    if not free:
        raise NetnsError("no free 10.231.x.0/24 subnet: every one overlaps a route of this machine")
    return random.choice(free)


def nsenter(ns: str, argv: Sequence[str]) -> list[str]:
    """argv run in network namespace `ns`, everything else (mounts, pids, files) shared."""
    return ["nsenter", f"--net=/run/netns/{ns}", "--", *map(str, argv)]


@dataclass
class Host:
    label: str
    ns: str
    addr: str

    def argv(self, argv: Sequence[str]) -> list[str]:
        return nsenter(self.ns, argv)

    def run(self, argv: Sequence[str], *, env: dict[str, str] | None = None, timeout: float = 120,
            input: str | None = None, cwd: str | None = None) -> subprocess.CompletedProcess:
        """Run to completion in this host's network, output captured as text (not checked)."""
        return subprocess.run(self.argv(argv), capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd,
                              input=input, stdin=None if input is not None else subprocess.DEVNULL)

    def popen(self, argv: Sequence[str], **kw) -> subprocess.Popen:
        """Start in this host's network (in its own session, so a signal to the test spares it)."""
        kw.setdefault("stdin", subprocess.DEVNULL)
        kw.setdefault("start_new_session", True)
        return subprocess.Popen(self.argv(argv), **kw)

    def pids(self) -> list[int]:
        """Processes in this host's network namespace."""
        return ns_pids(self.ns)

    def wait_tcp(self, port: int, timeout: float = 30) -> None:
        """Block until something on this host accepts TCP connections on addr:port."""
        code = ("import socket,sys,time\n"
                "end=time.monotonic()+float(sys.argv[3])\n"
                "while True:\n"
                "    try:\n"
                "        socket.create_connection((sys.argv[1],int(sys.argv[2])),timeout=1).close(); break\n"
                "    except OSError as e:\n"
                "        if time.monotonic()>end: sys.exit(f'{sys.argv[1]}:{sys.argv[2]}: {e}')\n"
                "        time.sleep(0.05)\n")
        p = self.run([sys.executable, "-c", code, self.addr, str(port), str(timeout)], timeout=timeout + 10)
        if p.returncode != 0:
            raise NetnsError(f"{self.label}: nothing listens on {self.addr}:{port} after {timeout:.0f}s: "
                             f"{p.stderr.strip()}")


def ns_pids(ns: str) -> list[int]:
    p = _ip("netns", "pids", ns, check=False)
    return [int(w) for w in p.stdout.split() if w.isdigit() and int(w) != os.getpid()]


def _fuse_mounts() -> list[str]:
    """Mount points of FUSE file systems in this mount namespace (unescaped)."""
    out = []
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split(" ")
            if len(fields) > 2 and fields[2].startswith("fuse"):
                out.append(re.sub(r"\\(\d{3})", lambda m: chr(int(m.group(1), 8)), fields[1]))
    return out


def _served_by(pids: Iterable[int]) -> set[str]:
    """FUSE mount points that one of these processes serves (it holds /dev/fuse and names the
    mount point on its command line, as `pyjuicefs mount` does)."""
    mounts = set(_fuse_mounts())
    found: set[str] = set()
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            if not any(os.readlink(f"/proc/{pid}/fd/{fd}") == "/dev/fuse" for fd in fds if fd.isdigit()):
                continue
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
        except OSError:
            continue
        found |= mounts & set(argv)
    return found


def _lazy_unmount(path: str) -> str | None:
    if path not in _fuse_mounts():
        return None
    p = subprocess.run(["fusermount3", "-u", "-z", path], capture_output=True, text=True, timeout=30)
    return None if p.returncode == 0 else f"fusermount3 -u -z {path}: {p.stderr.strip()}"


def _stop_pids(ns: str, grace: float = 10) -> list[str]:
    """SIGTERM every process in `ns`, then SIGKILL what is left after `grace` seconds."""
    problems: list[str] = []
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5)):
        pids = ns_pids(ns)
        if not pids:
            return problems
        if sig == signal.SIGKILL:
            problems.append(f"{ns}: pids {pids} ignored SIGTERM for {grace:.0f}s: SIGKILL")
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        end = time.monotonic() + wait
        while ns_pids(ns) and time.monotonic() < end:
            time.sleep(0.1)
    if ns_pids(ns):
        problems.append(f"{ns}: pids {ns_pids(ns)} survived SIGKILL")
    return problems


def teardown_namespaces(names: Sequence[str], mounts: Iterable[str] = ()) -> list[str]:
    """Unmount (lazily) `mounts` and every FUSE mount served from these namespaces, stop their
    processes, delete the namespaces. Returns what went wrong; never raises."""
    problems: list[str] = []
    existing = set(_ip("netns", "list", check=False).stdout.split())
    names = [n for n in names if n in existing]
    pids = [p for n in names for p in ns_pids(n)]
    for path in sorted(set(mounts) | _served_by(pids), reverse=True):
        try:
            if err := _lazy_unmount(path):
                problems.append(err)
        except (OSError, subprocess.SubprocessError) as e:
            problems.append(f"unmount {path}: {e}")
    for n in names:
        try:
            problems += _stop_pids(n)
        except (OSError, subprocess.SubprocessError) as e:
            problems.append(f"stop processes of {n}: {e}")
    for n in names:
        p = _ip("netns", "del", n, check=False)
        if p.returncode != 0:
            problems.append(f"ip netns del {n}: {p.stderr.strip()}")
    return problems


def sweep_stale() -> list[str]:
    """Tear down namespaces of this module left by a run whose process is gone (SIGKILLed)."""
    stale = []
    for line in _ip("netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = _NAME.match(name)
        if m and not os.path.exists(f"/proc/{m.group(1)}"):
            stale.append(name)
    # Hosts before their switch: deleting a host removes its veth pair.
    return teardown_namespaces(sorted(stale, key=lambda n: n.endswith("-sw"))) if stale else []


@dataclass
class Network:
    """Hosts named by `labels` on one /24 (addresses .1, .2, ... in label order) and a switch."""

    labels: Sequence[str]
    subnet: ipaddress.IPv4Network | None = None
    hosts: dict[str, Host] = field(default_factory=dict)
    mounts: list[str] = field(default_factory=list)
    base: str = ""

    def __post_init__(self) -> None:
        if len(set(self.labels)) != len(self.labels) or not all(re.fullmatch(r"[a-z0-9]{1,8}", x)
                                                                for x in self.labels):
            raise ValueError("labels must be distinct, 1-8 of a-z0-9")
        self.base = f"{PREFIX}{os.getpid()}x{uuid.uuid4().hex[:6]}"

    @property
    def switch(self) -> str:
        return f"{self.base}-sw"

    def namespaces(self) -> list[str]:
        return [h.ns for h in self.hosts.values()] + [self.switch]

    def __getitem__(self, label: str) -> Host:
        return self.hosts[label]

    def start(self) -> Network:
        require_netns()
        sweep_stale()
        self.subnet = self.subnet or pick_subnet()
        _live.append(self)
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def _build(self) -> None:
        assert self.subnet is not None
        sw = self.switch
        _ip("netns", "add", sw)
        _ip("-n", sw, "link", "add", "br0", "type", "bridge")
        _ip("-n", sw, "link", "set", "br0", "up")
        addrs = list(self.subnet.hosts())
        for i, label in enumerate(self.labels):
            ns = f"{self.base}-{label}"
            host = Host(label, ns, str(addrs[i]))
            self.hosts[label] = host  # before anything can fail: close() deletes it
            _ip("netns", "add", ns)
            port = f"p{i}"  # interface names are per namespace: short and fixed
            _ip("link", "add", "name", "eth0", "netns", ns, "type", "veth", "peer", "name", port, "netns", sw)
            _ip("-n", sw, "link", "set", port, "master", "br0")
            _ip("-n", sw, "link", "set", port, "up")
            _ip("-n", ns, "addr", "add", f"{host.addr}/{self.subnet.prefixlen}", "dev", "eth0")
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "link", "set", "eth0", "up")

    def track_mount(self, path: str) -> str:
        """A mount point some host will serve: unmounted at tear-down whatever happens."""
        path = os.path.realpath(path)
        if path not in self.mounts:
            self.mounts.append(path)
        return path

    def close(self) -> list[str]:
        """Tear everything down (idempotent); returns the problems met, never raises."""
        if self in _live:
            _live.remove(self)
        names = [h.ns for h in self.hosts.values()] + [self.switch]
        problems = teardown_namespaces(names, self.mounts)
        self.hosts.clear()
        return problems

    def __enter__(self) -> Network:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


@atexit.register
def _close_all() -> None:
    for net in list(_live):
        net.close()
