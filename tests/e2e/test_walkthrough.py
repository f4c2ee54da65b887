"""The README's walkthrough on three hosts, end to end.

Host "srv" runs Redis (an ACL user with a password, database 1) and an S3 server (moto), both
bound to its private address; hosts "c1" and "c2" format the volume, mount it in the background
with a disk cache, share files (close-to-open), run `pyjuicefs bench`, see each other in
`pyjuicefs status`, and unmount (busy, then --force; normally). The hosts are network namespaces
(netns.py); every command is the one a user types, run in its host's network. The S3 secret key
and the Redis password must never appear in any output or log.

Needs root and `ip netns` (CI runs as root): without them the test FAILS, it never skips.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import netns  # noqa: E402
import services  # noqa: E402  (tests/services.py, on sys.path through tests/conftest.py)

REDIS_PORT = 6379
S3_PORT = 5000
VOLUME = "myjfs"
BUCKET = "jfs-walkthrough"
ACCESS_KEY = "walkthrough-ak"
# Distinctive, so that a leak is found by a plain substring search of every output.
SECRET_KEY = "sk-" + uuid.uuid4().hex
REDIS_PASSWORD = "pw-" + uuid.uuid4().hex
SECRETS = (SECRET_KEY, REDIS_PASSWORD)

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def net() -> Iterator[netns.Network]:
    """Hosts srv, c1, c2 on a private /24; torn down (mounts, processes, namespaces) afterwards."""
    network = netns.Network(["srv", "c1", "c2"])
    try:
        network.start()
    except netns.NetnsError as e:
        pytest.fail(f"the multi-host walkthrough cannot build its hosts: {e}", pytrace=False)
    try:
        yield network
    finally:
        problems = network.close()
        if problems:
            print("netns teardown: " + "; ".join(problems), file=sys.stderr)


class Transcript:
    """Runs commands on hosts and keeps everything they printed, for the leak check."""

    def __init__(self) -> None:
        self.outputs: list[str] = []

    def run(self, host: netns.Host, *argv: str, env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess:
        p = host.run(argv, env={**os.environ, **(env or {})}, timeout=timeout)
        self.outputs += [p.stdout, p.stderr]
        return p

    def jfs(self, host: netns.Host, *args: str, **kw) -> subprocess.CompletedProcess:
        """`pyjuicefs ARGS` on `host` (this interpreter's, so the checkout under test)."""
        return self.run(host, sys.executable, "-m", "pyjuicefs", *args, **kw)

    def ok(self, host: netns.Host, *args: str, **kw) -> subprocess.CompletedProcess:
        p = self.jfs(host, *args, **kw)
        assert p.returncode == 0, f"pyjuicefs {args[0]} on {host.label} failed:\n{p.stdout}\n{p.stderr}"
        return p


def error_lines(p: subprocess.CompletedProcess) -> list[str]:
    out = p.stdout + p.stderr
    assert "Traceback" not in out, out
    return [ln for ln in out.splitlines() if "<ERROR>" in ln or "<FATAL>" in ln]


def start_servers(srv: netns.Host, workdir: Path) -> None:
    """Redis with ACL user jfs (the default user disabled) and moto S3, on srv's address."""
    redis_bin = services.find_binary("redis-server")
    if redis_bin is None:
        pytest.fail(f"redis-server is not installed; {services.INSTALL_HINT}", pytrace=False)
    (workdir / "redis").mkdir()
    rlog = open(workdir / "redis.log", "wb")
    srv.popen([redis_bin, "--bind", "127.0.0.1", srv.addr, "--port", str(REDIS_PORT), "--dir", str(workdir / "redis"),
               "--save", "", "--appendonly", "no", "--daemonize", "no"],
              stdout=rlog, stderr=subprocess.STDOUT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    slog = open(workdir / "s3.log", "wb")
    srv.popen([sys.executable, "-m", "moto.server", "-H", srv.addr, "-p", str(S3_PORT)],
              stdout=slog, stderr=subprocess.STDOUT, env=env, cwd=str(workdir))
    rlog.close()
    slog.close()
    srv.wait_tcp(REDIS_PORT)
    srv.wait_tcp(S3_PORT)
    # What an administrator runs once, on srv itself (Redis's protected mode accepts only loopback
    # clients while the default user has no password): a user for pyjuicefs, no anonymous access.
    acl = ("import redis,sys\n"
           "r=redis.Redis(host='127.0.0.1',port=int(sys.argv[1]))\n"
           "r.execute_command('ACL','SETUSER','jfs','on','>'+sys.stdin.read(),'~*','&*','+@all')\n"
           "r.execute_command('ACL','SETUSER','default','off','resetpass')\n")
    p = srv.run([sys.executable, "-c", acl, str(REDIS_PORT)], input=REDIS_PASSWORD)
    assert p.returncode == 0, p.stderr


def s3_keys(host: netns.Host, endpoint: str) -> list[str] | None:
    """Object names in the bucket as seen from `host`, or None if the bucket does not exist."""
    code = ("import boto3,json,sys\n"
            "from botocore.config import Config\n"
            "c=boto3.client('s3',endpoint_url=sys.argv[1],region_name='us-east-1',aws_access_key_id=sys.argv[3],"
            "aws_secret_access_key=sys.stdin.read(),config=Config(s3={'addressing_style':'path'}))\n"
            "if sys.argv[2] not in [b['Name'] for b in c.list_buckets()['Buckets']]: print('null'); sys.exit()\n"
            "keys=[o['Key'] for pg in c.get_paginator('list_objects_v2').paginate(Bucket=sys.argv[2]) "
            "for o in pg.get('Contents',[])]\n"
            "print(json.dumps(keys))\n")
    env = {**os.environ, "AWS_EC2_METADATA_DISABLED": "true"}
    p = subprocess.run(host.argv([sys.executable, "-c", code, endpoint, BUCKET, ACCESS_KEY]), input=SECRET_KEY,
                       capture_output=True, text=True, timeout=60, env=env)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def hold_open(host: netns.Host, path: Path) -> subprocess.Popen:
    """A process on `host` keeping `path` open until killed (it prints 'ready' once it has it)."""
    code = "import sys,time; f=open(sys.argv[1]); print('ready', flush=True); time.sleep(600)"
    p = host.popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    return p


def wait_no_pids(host: netns.Host, timeout: float = 30) -> list[int]:
    """Wait until no process is left in the host's network (its mount daemon exited)."""
    deadline = time.monotonic() + timeout
    while host.pids() and time.monotonic() < deadline:
        time.sleep(0.1)
    return host.pids()


def is_mounted(path: Path) -> bool:
    with open("/proc/self/mounts") as f:
        return any(line.split(" ")[1] == str(path) for line in f)


def test_walkthrough_three_hosts(net: netns.Network, tmp_path: Path) -> None:
    t0 = time.monotonic()
    srv, c1, c2 = net["srv"], net["c1"], net["c2"]
    tx = Transcript()
    start_servers(srv, tmp_path)
    meta_url = f"redis://jfs:{REDIS_PASSWORD}@{srv.addr}:{REDIS_PORT}/1"
    # c2 keeps the password out of its command lines: the URL names the user, META_PASSWORD has it.
    url_of = {"c1": (meta_url, {}),
              "c2": (f"redis://jfs@{srv.addr}:{REDIS_PORT}/1", {"META_PASSWORD": REDIS_PASSWORD})}
    endpoint = f"http://{srv.addr}:{S3_PORT}"
    assert s3_keys(c1, endpoint) is None  # format must create the bucket itself

    # --- format, from c1: S3 on srv, metadata in Redis db 1 as user jfs ---------------------------
    p = tx.ok(c1, "format", "--storage", "s3", "--bucket", f"{endpoint}/{BUCKET}", "--access-key", ACCESS_KEY,
              "--secret-key", SECRET_KEY, meta_url, VOLUME)
    out = p.stderr  # JuiceFS logs "Volume is formatted as {...}"
    setting = json.JSONDecoder().raw_decode(out[out.index("{", out.index("Volume is formatted as")):])[0]
    assert setting["Name"] == VOLUME and setting["Storage"] == "s3"
    assert setting["SecretKey"] == "removed"
    assert f"{VOLUME}/juicefs_uuid" in (s3_keys(c1, endpoint) or [])

    # A wrong password is one clear error line, the password in it masked.
    p = tx.jfs(c2, "status", f"redis://jfs:wrong-{REDIS_PASSWORD}@{srv.addr}:{REDIS_PORT}/1")
    assert p.returncode != 0 and len(error_lines(p)) == 1, p.stderr

    # --- mount on both clients, in the background, each with its own disk cache -------------------
    mnt = {}
    for host in (c1, c2):
        mp = tmp_path / f"{host.label}-mnt"
        mp.mkdir()
        mnt[host.label] = Path(net.track_mount(str(mp)))
        url, env = url_of[host.label]
        tx.ok(host, "mount", "--background", "--cache-dir", str(tmp_path / f"{host.label}-cache"),
              "--cache-size", "512", "--log", str(tmp_path / f"{host.label}.log"), url, str(mp), env=env)
        assert is_mounted(mnt[host.label])
    m1, m2 = mnt["c1"], mnt["c2"]
    assert c2.pids(), "c2's mount daemon is not running"
    for pid in c2.pids():  # c2's mount daemon: no password on its command line (ps shows it)
        assert REDIS_PASSWORD.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()

    # --- close-to-open: what one client wrote and closed, the other opens and reads ----------------
    data1 = os.urandom(5 * 1024 * 1024 + 12345)  # two blocks, the second partial
    (m1 / "hello.bin").write_bytes(data1)
    assert (m2 / "hello.bin").read_bytes() == data1
    data2 = os.urandom(300_001)
    (m2 / "from-c2.bin").write_bytes(data2)
    assert (m1 / "from-c2.bin").read_bytes() == data2
    # An overwrite (shorter) on c2 of a file whose attributes c1's kernel has just cached (for
    # --attr-cache, 1 s) is what c1 reads at its next open: open drops the stale pages and size.
    assert (m1 / "hello.bin").stat().st_size == len(data1)
    data3 = os.urandom(777_777)
    (m2 / "hello.bin").write_bytes(data3)
    assert (m1 / "hello.bin").read_bytes() == data3
    (m1 / "dir" / "sub").mkdir(parents=True)
    (m1 / "dir" / "sub" / "note.txt").write_text("written on c1\n")
    assert (m2 / "dir" / "sub" / "note.txt").read_text() == "written on c1\n"

    # --- bench on c1's mount, small sizes -----------------------------------------------------------
    (m1 / "bench").mkdir()
    p = tx.ok(c1, "bench", str(m1 / "bench"), "--big-file-size", "8", "--small-file-size", "64K",
              "--small-file-count", "10", env={"SKIP_DROP_CACHES": "true"}, timeout=180)
    assert "Time used:" in p.stdout and "Write big file" in p.stdout, p.stdout
    assert os.listdir(m1 / "bench") == []  # it removes its files

    # --- status: two sessions, one per client ----------------------------------------------------
    p = tx.ok(c2, "status", url_of["c2"][0], env=url_of["c2"][1])
    status = json.loads(p.stdout)
    assert status["Setting"]["SecretKey"] == "removed"
    assert sorted(s["MountPoint"] for s in status["Sessions"]) == sorted([str(m1), str(m2)])
    assert status["Stat"]["UsedInodes"] >= 5

    # --- umount: busy while a process on c1 holds a file; --force; the other one normally ----------
    holder = hold_open(c1, m1 / "from-c2.bin")
    try:
        p = tx.jfs(c1, "umount", str(m1))
        assert p.returncode != 0
        (err,) = error_lines(p)
        assert "Device or resource busy" in err and str(m1) in err, err
        assert is_mounted(m1)
        (m1 / "after-busy.txt").write_text("still works\n")
        assert (m2 / "after-busy.txt").read_text() == "still works\n"

        tx.ok(c1, "umount", "--force", str(m1))
        assert not is_mounted(m1)
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert wait_no_pids(c1) == [], "c1's mount daemon did not exit after the last file was closed"

    tx.ok(c2, "umount", str(m2))
    assert not is_mounted(m2)
    assert c2.pids() == []  # umount returns once the daemon has exited

    # Both daemons closed their sessions on the way out; the data is in the bucket on srv.
    assert json.loads(tx.ok(c2, "status", meta_url).stdout)["Sessions"] == []
    keys = s3_keys(c2, endpoint) or []
    assert any(k.startswith(f"{VOLUME}/chunks/") for k in keys), keys

    # --- no secret anywhere: the output of every command, the mount daemons' logs -----------------
    logs = [(tmp_path / f"{h}.log").read_text(errors="replace") for h in ("c1", "c2")]
    for text in tx.outputs + logs:
        for secret in SECRETS:
            assert secret not in text, f"a secret leaked into:\n{text[-3000:]}"
    assert time.monotonic() - t0 < 150, "the walkthrough should take well under 2 minutes"
