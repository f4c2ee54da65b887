"""Real servers for the tests: Redis, PostgreSQL, MariaDB, etcd and a moto S3 endpoint.

Each server runs from the system packages on a free 127.0.0.1 port with its data in a fresh temp dir,
is declared ready only when it answers its own protocol (never after a fixed sleep), and is stopped with
its temp dir removed by `stop()` (the fixtures call it; an atexit hook catches the rest). Children get
PR_SET_PDEATHSIG so a killed pytest does not leave servers behind; a later run sweeps their temp dirs.

This module has no pytest dependency so benchmarks can reuse it; it raises ServiceError with a message
that says how to fix the problem, and the fixtures turn that into a test failure (never a skip).
"""

from __future__ import annotations

import atexit
import base64
import ctypes
import glob
import itertools
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Callable

HOST = "127.0.0.1"
PASSWORD = "pass"  # the shared fixtures' documented test password (postgres and MariaDB root)
S3_ACCESS_KEY = "pyjuicefs-test-ak"
S3_SECRET_KEY = "pyjuicefs-test-sk"
READY_TIMEOUT = float(os.environ.get("PYJUICEFS_SERVICE_TIMEOUT", "60"))
TMP_PREFIX = "pyjfs-svc-"
INSTALL_HINT = "run `make test` (scripts/install-deps.sh installs the system packages)"


class ServiceError(Exception):
    """A server is missing or did not come up; the message says what to do."""


class _EarlyExit(ServiceError):
    """The server process ended before it was ready (often: its port was taken meanwhile)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free just now (callers retry if someone grabs it first)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def find_binary(name: str, extra_dirs: tuple[str, ...] = ()) -> str | None:
    """Absolute path of `name` on PATH or in extra_dirs (sbin dirs are not on every user's PATH)."""
    path = shutil.which(name)
    if path:
        return path
    for d in (*extra_dirs, "/usr/sbin", "/usr/local/sbin", "/sbin"):
        p = os.path.join(d, name)
        if os.access(p, os.X_OK):
            return p
    return None


def binary_version(argv: list[str]) -> str:
    """First line of a `--version` style command, or a short note on why it failed."""
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"version unknown ({type(e).__name__})"
    lines = (out.stdout or out.stderr).strip().splitlines()
    return lines[0].strip() if lines else "version unknown"


_LIBC = ctypes.CDLL(None, use_errno=True)


def _die_with_parent() -> None:
    """Run in the child before exec: the kernel kills it if the thread that started it dies."""
    _LIBC.prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG


def _require(module: str, hint: str) -> None:
    """Fail with an install hint now, rather than probing in vain until the timeout."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise ServiceError(f"Python module `{module}` is missing: {hint}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale_dirs() -> None:
    """Remove temp dirs left by earlier test processes that were killed (their pid is in the name)."""
    for d in glob.glob(os.path.join(tempfile.gettempdir(), TMP_PREFIX + "*")):
        m = re.match(rf"{TMP_PREFIX}[a-z0-9]+-(\d+)-", os.path.basename(d))
        if m and not _pid_alive(int(m.group(1))):
            shutil.rmtree(d, ignore_errors=True)


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:]) or "(empty log)"


_running: list["Server"] = []


@atexit.register
def stop_all() -> None:
    """Stop whatever is still running (normally the fixtures already did)."""
    for srv in list(_running):
        srv.stop()


class Server:
    """One server process in a temp dir; subclasses say how to prepare, launch and probe it."""

    name = "server"
    binary = ""  # command name looked up by find_binary
    hint = ""  # what to install when the binary is missing
    stop_signal = signal.SIGTERM

    def __init__(self) -> None:
        self.host = HOST
        self.port = 0
        self.tmpdir: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.startup_seconds: float | None = None
        self.log_path: Path | None = None

    # --- subclass hooks ---------------------------------------------------------------------------
    def locate(self) -> str:
        """Path of the main binary; ServiceError with an install hint when missing."""
        path = find_binary(self.binary)
        if not path:
            raise ServiceError(f"`{self.binary}` not found; {self.hint}; or {INSTALL_HINT}")
        return path

    def version(self) -> str:
        return binary_version([self.locate(), "--version"])

    def prepare(self) -> None:
        """One-time setup in self.tmpdir before the first launch (initdb and the like)."""

    def command(self) -> list[str]:
        raise NotImplementedError

    def probe(self) -> bool:
        """True once the server answers its protocol; exceptions count as 'not yet'."""
        raise NotImplementedError

    def pick_ports(self) -> None:
        self.port = free_port()

    def popen_kwargs(self) -> dict:
        return {}

    # --- lifecycle --------------------------------------------------------------------------------
    def start(self) -> "Server":
        t0 = time.monotonic()
        self.locate()
        self.tmpdir = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{self.name}-{os.getpid()}-"))
        self.log_path = self.tmpdir / "server.log"
        _running.append(self)
        try:
            self.prepare()
            for attempt in range(3):
                self.pick_ports()
                self._launch()
                try:
                    self._wait_ready()
                    break
                except _EarlyExit:
                    if attempt == 2:
                        raise
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0
        return self

    def _launch(self) -> None:
        assert self.log_path is not None
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=self.tmpdir, preexec_fn=_die_with_parent, **self.popen_kwargs())

    def _wait_ready(self) -> None:
        assert self.proc is not None and self.log_path is not None
        deadline = time.monotonic() + READY_TIMEOUT
        delay, last = 0.02, "no answer"
        while True:
            try:
                if self.probe():
                    return
            except Exception as e:  # noqa: BLE001 - any failure means "not ready yet"
                last = f"{type(e).__name__}: {e}"
            if self.proc.poll() is not None:
                raise _EarlyExit(f"{self.name} exited with code {self.proc.returncode} before it was ready; "
                                 f"log tail:\n{_log_tail(self.log_path)}")
            if time.monotonic() > deadline:
                raise ServiceError(f"{self.name} not ready after {READY_TIMEOUT:.0f}s on port {self.port} "
                                   f"(last probe: {last}); log tail:\n{_log_tail(self.log_path)}")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.25)

    def stop(self) -> None:
        """Stop the process (politely, then SIGKILL) and remove the temp dir; safe to call twice."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(self.stop_signal)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self.tmpdir is not None:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None
        if self in _running:
            _running.remove(self)


# --- Redis ----------------------------------------------------------------------------------------

def redis_command(port: int, *commands: list[str], host: str = HOST, timeout: float = 5.0) -> list[bytes]:
    """Send RESP commands on one connection; return each reply's first line (enough for status replies)."""
    payload = b""
    for cmd in commands:
        payload += b"*%d\r\n" % len(cmd)
        for arg in cmd:
            a = arg.encode()
            payload += b"$%d\r\n%s\r\n" % (len(a), a)
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(payload)
        buf = b""
        while buf.count(b"\r\n") < len(commands):
            chunk = s.recv(4096)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            buf += chunk
    return buf.split(b"\r\n")[: len(commands)]


class RedisServer(Server):
    name = "redis"
    binary = "redis-server"
    hint = "apt-get install redis-server"
    DATABASES = 64

    def __init__(self) -> None:
        super().__init__()
        # db 0 is left alone; 1..63 are handed out round-robin by next_db()
        self._dbs = itertools.cycle(range(1, self.DATABASES))

    def command(self) -> list[str]:
        return [self.locate(), "--port", str(self.port), "--bind", HOST, "--dir", str(self.tmpdir),
                "--save", "", "--appendonly", "no", "--maxmemory-policy", "noeviction",
                "--databases", str(self.DATABASES), "--protected-mode", "no", "--daemonize", "no"]

    def probe(self) -> bool:
        return redis_command(self.port, ["PING"])[0] == b"+PONG"

    def url(self, db: int) -> str:
        return f"redis://{HOST}:{self.port}/{db}"

    def flushdb(self, db: int) -> None:
        replies = redis_command(self.port, ["SELECT", str(db)], ["FLUSHDB"])
        if replies != [b"+OK", b"+OK"]:
            raise ServiceError(f"redis FLUSHDB on db {db} failed: {replies!r}")

    def next_db(self) -> int:
        """A flushed db number, cycling through 1..63."""
        db = next(self._dbs)
        self.flushdb(db)
        return db


# --- PostgreSQL -----------------------------------------------------------------------------------

def _run(argv: list[str], what: str, **kw) -> None:
    out = subprocess.run(argv, capture_output=True, text=True, timeout=READY_TIMEOUT, **kw)
    if out.returncode != 0:
        raise ServiceError(f"{what} failed (exit {out.returncode}): {(out.stderr or out.stdout).strip()[-2000:]}")


def _self_signed_cert(cert: Path, key: Path) -> None:
    """A throwaway TLS pair, so that clients which default to sslmode=require (Go's lib/pq) connect."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    k = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    now = datetime.datetime.now(datetime.timezone.utc)
    c = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(k.public_key())
         .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
         .not_valid_after(now + datetime.timedelta(days=30)).sign(k, hashes.SHA256()))
    cert.write_bytes(c.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    key.chmod(0o600)


def _safe_db_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", name):
        raise ValueError(f"database name must be letters, digits and _ (got {name!r})")
    return name


class PostgresServer(Server):
    name = "postgres"
    binary = "postgres"
    hint = "apt-get install postgresql"
    stop_signal = signal.SIGINT  # "fast" shutdown; SIGTERM would wait for clients to disconnect
    RUN_AS = ("postgres", "nobody")  # initdb refuses root: the first of these that exists runs it

    def __init__(self) -> None:
        super().__init__()
        self.user = "postgres"
        self.password = PASSWORD
        self._run_as: pwd.struct_passwd | None = None

    def bindir(self) -> str | None:
        """PYJUICEFS_PG_BINDIR, else the newest /usr/lib/postgresql/<major>/bin (Debian's layout)."""
        env = os.environ.get("PYJUICEFS_PG_BINDIR")
        if env:
            return env
        majors = [Path(d) for d in glob.glob("/usr/lib/postgresql/*/bin") if Path(d).parent.name.isdigit()]
        return str(max(majors, key=lambda d: int(d.parent.name))) if majors else None

    def locate(self) -> str:
        d = self.bindir()
        if d and all(os.access(os.path.join(d, b), os.X_OK) for b in ("postgres", "initdb")):
            return os.path.join(d, "postgres")
        raise ServiceError(f"no /usr/lib/postgresql/*/bin/{{postgres,initdb}}; {self.hint}; or {INSTALL_HINT}")

    def popen_kwargs(self) -> dict:
        if self._run_as is None:
            return {}
        return {"user": self._run_as.pw_uid, "group": self._run_as.pw_gid, "extra_groups": []}

    def prepare(self) -> None:
        assert self.tmpdir is not None
        _require("psycopg", "pip install 'psycopg[binary]'")
        if os.geteuid() == 0:
            for u in self.RUN_AS:
                try:
                    self._run_as = pwd.getpwnam(u)
                    break
                except KeyError:
                    continue
            else:
                raise ServiceError("running as root and no `postgres` or `nobody` user to run initdb as")
        pwfile = self.tmpdir / "pwfile"
        pwfile.write_text(self.password + "\n")
        _self_signed_cert(self.tmpdir / "server.crt", self.tmpdir / "server.key")
        if self._run_as is not None:
            for p in (self.tmpdir, *self.tmpdir.iterdir()):
                os.chown(p, self._run_as.pw_uid, self._run_as.pw_gid)
        initdb = os.path.join(os.path.dirname(self.locate()), "initdb")
        _run([initdb, "-D", str(self.tmpdir / "data"), "-U", self.user, f"--pwfile={pwfile}",
              "--auth=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync"],
             "initdb", cwd=self.tmpdir, **self.popen_kwargs())

    def command(self) -> list[str]:
        t = self.tmpdir
        return [self.locate(), "-D", str(t / "data"), "-p", str(self.port), "-k", str(t),
                "-c", f"listen_addresses={HOST}", "-c", "fsync=off", "-c", "synchronous_commit=off",
                "-c", "full_page_writes=off", "-c", "max_connections=200",
                "-c", "ssl=on", "-c", f"ssl_cert_file={t / 'server.crt'}", "-c", f"ssl_key_file={t / 'server.key'}"]

    def connect(self, dbname: str = "postgres"):
        import psycopg

        return psycopg.connect(host=HOST, port=self.port, user=self.user, password=self.password,
                               dbname=dbname, connect_timeout=5, autocommit=True)

    def probe(self) -> bool:
        with self.connect() as c:
            return c.execute("SELECT 1").fetchone() == (1,)

    def url(self, dbname: str) -> str:
        return f"postgres://{self.user}:{self.password}@{HOST}:{self.port}/{dbname}"

    def create_db(self, name: str) -> None:
        with self.connect() as c:
            c.execute(f'CREATE DATABASE "{_safe_db_name(name)}"')

    def drop_db(self, name: str) -> None:
        """Drop even while clients are still connected (a test may leak a connection)."""
        with self.connect() as c:
            c.execute(f'DROP DATABASE IF EXISTS "{_safe_db_name(name)}" WITH (FORCE)')


# --- MariaDB --------------------------------------------------------------------------------------

# Runs inside mariadb-install-db's bootstrap, where grant statements work only after FLUSH PRIVILEGES.
# The host-specific root rows (127.0.0.1, ::1, hostname) have no password and would shadow root@'%'.
_MYSQL_INIT = f"""FLUSH PRIVILEGES;
DELETE FROM mysql.global_priv WHERE User='root' AND Host <> 'localhost';
FLUSH PRIVILEGES;
ALTER USER 'root'@'localhost' IDENTIFIED BY '{PASSWORD}';
CREATE USER 'root'@'%' IDENTIFIED BY '{PASSWORD}';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION;
"""


class MySQLServer(Server):
    name = "mysql"
    binary = "mariadbd"
    hint = "apt-get install mariadb-server"

    def __init__(self) -> None:
        super().__init__()
        self.user = "root"
        self.password = PASSWORD

    def prepare(self) -> None:
        assert self.tmpdir is not None
        _require("pymysql", "pip install PyMySQL")
        install = find_binary("mariadb-install-db")
        if not install:
            raise ServiceError(f"`mariadb-install-db` not found; {self.hint}; or {INSTALL_HINT}")
        init = self.tmpdir / "init.sql"
        init.write_text(_MYSQL_INIT)
        _run([install, "--no-defaults", f"--datadir={self.tmpdir / 'data'}", "--user=root",
              "--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve",
              f"--extra-file={init}"], "mariadb-install-db", cwd=self.tmpdir)

    def command(self) -> list[str]:
        t = self.tmpdir
        return [self.locate(), "--no-defaults", f"--datadir={t / 'data'}", f"--socket={t / 'mysqld.sock'}",
                f"--port={self.port}", f"--bind-address={HOST}", "--user=root", f"--pid-file={t / 'mysqld.pid'}",
                "--skip-name-resolve", "--skip-log-bin", "--performance-schema=OFF", "--max-connections=300",
                "--innodb-flush-log-at-trx-commit=0", "--innodb-doublewrite=0", "--innodb-buffer-pool-size=64M"]

    def connect(self, database: str | None = None):
        import pymysql

        return pymysql.connect(host=HOST, port=self.port, user=self.user, password=self.password,
                               database=database, connect_timeout=5, autocommit=True)

    def probe(self) -> bool:
        with self.connect() as c, c.cursor() as cur:
            cur.execute("SELECT 1")
            return cur.fetchone() == (1,)

    def url(self, dbname: str) -> str:
        return f"mysql://{self.user}:{self.password}@({HOST}:{self.port})/{dbname}"

    def create_db(self, name: str) -> None:
        with self.connect() as c, c.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{_safe_db_name(name)}`")

    def drop_db(self, name: str) -> None:
        with self.connect() as c, c.cursor() as cur:
            cur.execute("SET SESSION lock_wait_timeout = 5")  # a leaked open transaction must not hang us
            cur.execute(f"DROP DATABASE IF EXISTS `{_safe_db_name(name)}`")


# --- etcd -----------------------------------------------------------------------------------------

def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class EtcdServer(Server):
    name = "etcd"
    binary = "etcd"
    hint = "apt-get install etcd-server"

    def __init__(self) -> None:
        super().__init__()
        self.peer_port = 0

    def pick_ports(self) -> None:
        self.port, self.peer_port = free_port(), free_port()

    def command(self) -> list[str]:
        client, peer = f"http://{HOST}:{self.port}", f"http://{HOST}:{self.peer_port}"
        # a data dir per attempt: a failed attempt may have stored its peer URL in the old one
        return [self.locate(), "--name", "pyjfs-test", "--data-dir", str(self.tmpdir / f"data-{self.port}"),
                "--listen-client-urls", client, "--advertise-client-urls", client,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", f"pyjfs-test={peer}", "--initial-cluster-state", "new",
                "--logger", "zap", "--log-outputs", "stderr", "--log-level", "warn"]

    @property
    def client_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def call(self, path: str, body: dict) -> dict:
        """POST to etcd's v3 JSON gateway (keys and values are base64 there)."""
        req = urllib.request.Request(self.client_url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def probe(self) -> bool:
        with urllib.request.urlopen(self.client_url + "/health", timeout=2) as r:
            return json.loads(r.read()).get("health") == "true"

    def url(self, prefix: str) -> str:
        return f"etcd://{HOST}:{self.port}/{prefix}"

    def delete_prefix(self, prefix: str) -> None:
        p = prefix.encode()
        end = p[:-1] + bytes([p[-1] + 1])  # prefixes here are ASCII, so the last byte never overflows
        self.call("/v3/kv/deleterange", {"key": _b64(p), "range_end": _b64(end)})


# --- S3 (moto) ------------------------------------------------------------------------------------

class S3Server(Server):
    name = "s3"
    binary = "python -m moto.server"  # run with this interpreter, so it is the moto that pip installed
    hint = "pip install 'moto[server]'"

    def __init__(self) -> None:
        super().__init__()
        self.access_key = S3_ACCESS_KEY
        self.secret_key = S3_SECRET_KEY
        self._probe_client = None

    def locate(self) -> str:
        for mod in ("moto", "flask", "boto3"):  # flask comes with moto's [server] extra
            _require(mod, f"{self.hint}; or {INSTALL_HINT}")
        return sys.executable

    def version(self) -> str:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return f"moto {version('moto')}"
        except PackageNotFoundError:
            raise ServiceError(f"moto is not installed; {self.hint}") from None

    def popen_kwargs(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env["AWS_EC2_METADATA_DISABLED"] = "true"
        return {"env": env}

    def command(self) -> list[str]:
        return [self.locate(), "-m", "moto.server", "-H", HOST, "-p", str(self.port)]

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.port}"

    def bucket_url(self, name: str) -> str:
        return f"{self.endpoint}/{name}"

    def client(self):
        """A boto3 S3 client for this endpoint (path-style, no retries, never the real AWS)."""
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
                            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                                          connect_timeout=2, read_timeout=10))

    def probe(self) -> bool:
        if self._probe_client is None:
            self._probe_client = self.client()
        return "Buckets" in self._probe_client.list_buckets()

    def stop(self) -> None:
        self._probe_client = None
        super().stop()


SERVERS: dict[str, Callable[[], Server]] = {
    "redis": RedisServer, "postgres": PostgresServer, "mysql": MySQLServer,
    "etcd": EtcdServer, "s3": S3Server,
}


def inventory() -> list[tuple[str, str | None, str]]:
    """(service, binary path or None, version or why missing) for each server kind, for report headers."""
    rows = []
    for name, cls in SERVERS.items():
        srv = cls()
        try:
            rows.append((name, srv.locate(), srv.version()))
        except ServiceError as e:
            rows.append((name, None, str(e)))
    return rows


# Lines of the reference juicefs's log that are about this machine, not about the volume.
_BENIGN_JUICEFS_WARNINGS = ("storage tier", "AOF", "latency to database")


def juicefs_findings(stderr: str) -> list[str]:
    """WARNING/ERROR lines of a reference `juicefs fsck` (or similar) that report a problem."""
    return [ln for ln in stderr.splitlines()
            if ("<WARNING>" in ln or "<ERROR>" in ln) and not any(b in ln for b in _BENIGN_JUICEFS_WARNINGS)]


def assert_one_error(p: subprocess.CompletedProcess, *fragments: str) -> str:
    """A command that failed the way bad input must: exit != 0, exactly one error line naming each
    fragment, no traceback. Returns that line."""
    out = p.stdout + p.stderr
    assert p.returncode != 0, out
    assert "Traceback" not in out, out
    errors = [line for line in out.splitlines() if "<ERROR>" in line or "<FATAL>" in line]
    assert len(errors) == 1, out
    for frag in fragments:
        assert frag in errors[0], errors[0]
    return errors[0]


def pyjuicefs_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120,
                  argv0: list[str] | None = None) -> subprocess.CompletedProcess:
    """Run `python -m pyjuicefs ARGS` (or `argv0 ARGS`) to completion, output captured."""
    cmd = (argv0 or [sys.executable, "-m", "pyjuicefs"]) + list(args)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                          env={**os.environ, **(env or {})})
