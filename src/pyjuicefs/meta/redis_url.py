"""Parse a JuiceFS Redis metadata URL into redis-py connection options.

Accepted forms (as JuiceFS 1.4 / go-redis accept them):
  redis://[user][:password]@host[:port][/db][?options]
  rediss://...                           TLS; tls-cert-file, tls-key-file, tls-ca-cert-file,
                                         insecure-skip-verify
  unix://[user][:password]@/path/redis.sock[?db=N]
The password comes from the URL, else REDIS_PASSWORD, META_PASSWORD or the file named by
META_PASSWORD_FILE. Sentinel ("master,host1,host2") and cluster ("host1,host2") URLs are refused.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from ..errors import UserError
from . import redact_url

DEFAULT_PORT = 6379
CONNECT_TIMEOUT = 3.0  # seconds: a wrong host must fail fast
READ_TIMEOUT = 30.0  # JuiceFS's default read-timeout

# query options JuiceFS pops before go-redis sees the URL, then go-redis's own ones
_JUICEFS_OPTS = {
    "min-retry-backoff", "min_retry_backoff", "max-retry-backoff", "max_retry_backoff",
    "read-timeout", "read_timeout", "write-timeout", "write_timeout", "route-read",
    "insecure-skip-verify", "tls-cert-file", "tls-key-file", "tls-ca-cert-file", "tls-server-name",
}
_GOREDIS_OPTS = {
    "db", "protocol", "client_name", "max_retries", "dial_timeout", "pool_fifo", "pool_size",
    "pool_timeout", "min_idle_conns", "max_idle_conns", "max_active_conns", "conn_max_idle_time",
    "conn_max_lifetime", "skip_verify", "username", "password",
}


@dataclass
class RedisAddr:
    scheme: str
    host: str = "localhost"
    port: int = DEFAULT_PORT
    path: str = ""  # unix socket
    db: int = 0
    username: str | None = None
    password: str | None = None
    read_timeout: float = READ_TIMEOUT
    tls: dict[str, Any] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return self.path if self.scheme == "unix" else f"{self.host}:{self.port}"

    def client_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = dict(
            db=self.db, username=self.username, password=self.password,
            socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=self.read_timeout,
            protocol=2,  # RESP2: every Redis version answers it, and raw replies stay one shape
        )
        if self.scheme == "unix":
            kw["unix_socket_path"] = self.path
        else:
            kw.update(host=self.host, port=self.port)
        if self.scheme == "rediss":
            kw["ssl"] = True
            kw.update(self.tls)
        return kw


def _duration(value: str, url: str, name: str) -> float:
    """A Go duration ("5s", "250ms", "1m30s") or plain seconds."""
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", value)
    if not parts or "".join(n + u for n, u in parts) != value:
        raise UserError(f"invalid duration {value!r} for {name} in {redact_url(url)}")
    return sum(float(n) * units[u] for n, u in parts)


def _env_password() -> str | None:
    for var in ("REDIS_PASSWORD", "META_PASSWORD"):
        if os.environ.get(var):
            return os.environ[var]
    path = os.environ.get("META_PASSWORD_FILE")
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                return f.read().strip() or None
        except OSError as e:
            raise UserError(f"cannot read META_PASSWORD_FILE {path}: {e.strerror}") from None
    return None


def parse_redis_url(url: str) -> RedisAddr:
    safe = redact_url(url)
    if "://" not in url:
        raise UserError(f"invalid Redis URL {safe}: expected redis://host:port/db")
    scheme = url.split("://", 1)[0].lower()
    if scheme not in ("redis", "rediss", "unix"):
        raise UserError(f"invalid Redis URL {safe}: unknown scheme {scheme!r}")
    try:
        u = urlsplit(url)
    except ValueError as e:
        raise UserError(f"invalid Redis URL {safe}: {e}") from None
    netloc = u.netloc
    hostpart = netloc.rpartition("@")[2]
    if "," in hostpart:
        raise UserError(
            f"Redis Sentinel and Cluster URLs are not supported yet ({safe}); "
            "use the address of a single Redis server")
    addr = RedisAddr(scheme=scheme)
    if u.username:
        addr.username = unquote(u.username)
    if u.password:
        addr.password = unquote(u.password)

    opts = dict(parse_qsl(u.query, keep_blank_values=True))
    unknown = sorted(set(opts) - _JUICEFS_OPTS - _GOREDIS_OPTS)
    if unknown:
        raise UserError(f"invalid Redis URL {safe}: unexpected option {unknown[0]!r}")

    if scheme == "unix":
        if not u.path:
            raise UserError(f"invalid Redis URL {safe}: expected unix:///path/to/redis.sock")
        addr.path = unquote(u.path)
        db_text = opts.get("db", "0")
    else:
        try:
            port = u.port
        except ValueError:
            raise UserError(f"invalid Redis URL {safe}: bad port") from None
        addr.host = u.hostname or "localhost"
        addr.port = port if port is not None else DEFAULT_PORT
        path = u.path.strip("/")
        db_text = opts.get("db", path or "0")
    if not re.fullmatch(r"\d+", db_text):
        raise UserError(f"invalid Redis URL {safe}: database must be a number, got {db_text!r}")
    addr.db = int(db_text)

    if "password" in opts and not addr.password:
        addr.password = opts["password"]
    if "username" in opts and not addr.username:
        addr.username = opts["username"]
    if not addr.password:
        addr.password = _env_password()
    for name in ("read-timeout", "read_timeout"):
        if name in opts:
            addr.read_timeout = _duration(opts[name], url, name)

    if scheme == "rediss":
        tls: dict[str, Any] = {}
        if opts.get("tls-cert-file"):
            tls["ssl_certfile"] = opts["tls-cert-file"]
            tls["ssl_keyfile"] = opts.get("tls-key-file") or None
        if opts.get("tls-ca-cert-file"):
            tls["ssl_ca_certs"] = opts["tls-ca-cert-file"]
        if "insecure-skip-verify" in opts or "skip_verify" in opts:
            tls["ssl_cert_reqs"] = "none"
            tls["ssl_check_hostname"] = False
        addr.tls = tls
    return addr
