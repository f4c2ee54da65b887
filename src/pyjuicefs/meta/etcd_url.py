"""Parse a JuiceFS etcd metadata URL (pkg/meta/tkv_etcd.go, newEtcdClient).

  etcd://[user[:password]@]host[:port][,host[:port]...][/prefix][?options]

* Every key of the volume starts with the URL path (leading slash included) and the byte 0xFD:
  `etcd://h:2379/jfs` stores `setting` as b"/jfs\\xfdsetting"; without a path the prefix is b"\\xfd".
* The password comes from the URL, else META_PASSWORD (JuiceFS's NewClient puts it into a URL whose
  user has an empty password, `user:@host`; we also accept `user@host`).
* TLS (on when any of cacert, cert, key, server-name is given, as buildTlsConfig): `cacert`, `cert`,
  `key` (file paths), `server-name` (expected certificate name), `insecure-skip-verify` (any value).
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote

from ..errors import UserError
from . import redact_url

logger = logging.getLogger(__name__)

DEFAULT_PORT = 2379
PREFIX_SEP = b"\xfd"
_TLS_OPTS = ("cacert", "cert", "key", "server-name")
_KNOWN_OPTS = set(_TLS_OPTS) | {"insecure-skip-verify"}


@dataclass
class EtcdTLS:
    cacert: str = ""
    cert: str = ""
    key: str = ""
    server_name: str = ""
    insecure: bool = False


@dataclass
class EtcdAddr:
    endpoints: list[tuple[str, int]]
    prefix: bytes
    user: str = ""
    password: str = ""
    tls: EtcdTLS | None = None
    options: dict[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return ",".join(_join_host(h, p) for h, p in self.endpoints)


def _join_host(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _parse_endpoint(text: str, safe: str) -> tuple[str, int]:
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\](?::(\d*))?|([^\[\]:/@\s]+)(?::(\d*))?", text)
    if not m:
        raise UserError(f"invalid etcd URL {safe}: bad endpoint {text!r} (expected host:port)")
    host = m.group(1) or m.group(3)
    port_s = m.group(2) if m.group(1) else m.group(4)
    if not port_s:
        return host, DEFAULT_PORT
    port = int(port_s)
    if not 0 < port < 65536:
        raise UserError(f"invalid etcd URL {safe}: port {port} out of range in endpoint {text!r}")
    return host, port


def parse_etcd_url(url: str) -> EtcdAddr:
    safe = redact_url(url)
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() != "etcd":
        raise UserError(f"invalid etcd URL {safe}: expected etcd://[user:password@]host:port[,host:port]/prefix")
    query = ""
    if "?" in rest:
        rest, query = rest.split("?", 1)
    slash = rest.find("/")
    netloc, path = (rest, "") if slash < 0 else (rest[:slash], rest[slash:])
    user = password = ""
    if "@" in netloc:
        cred, netloc = netloc.rsplit("@", 1)
        user, _, password = cred.partition(":")
        user, password = unquote(user), unquote(password)
        if not user and password:
            raise UserError(f"invalid etcd URL {safe}: a password needs a user name (user:password@host)")
    if not netloc:
        raise UserError(f"invalid etcd URL {safe}: no endpoint (expected etcd://host:port/prefix)")
    endpoints = [_parse_endpoint(e.strip(), safe) for e in netloc.split(",") if e.strip()]
    if not endpoints:
        raise UserError(f"invalid etcd URL {safe}: no endpoint (expected etcd://host:port/prefix)")
    if user and not password:
        password = os.environ.get("META_PASSWORD", "")
    options = dict(parse_qsl(query, keep_blank_values=True))
    unknown = sorted(set(options) - _KNOWN_OPTS)
    if unknown:  # JuiceFS ignores them too; say so rather than fail
        logger.warning("ignored unknown etcd URL option(s): %s", ", ".join(unknown))
    tls = None
    if any(options.get(k) for k in _TLS_OPTS):
        tls = EtcdTLS(cacert=options.get("cacert", ""), cert=options.get("cert", ""), key=options.get("key", ""),
                      server_name=options.get("server-name", ""),
                      insecure=options.get("insecure-skip-verify", "") != "")
        if bool(tls.cert) != bool(tls.key):
            raise UserError(f"invalid etcd URL {safe}: `cert` and `key` must be given together")
        for name in ("cacert", "cert", "key"):
            p = getattr(tls, name)
            if p and not os.path.isfile(p):
                raise UserError(f"invalid etcd URL {safe}: {name} file {p} does not exist")
    return EtcdAddr(endpoints=endpoints, prefix=unquote(path).encode() + PREFIX_SEP, user=user,
                    password=password, tls=tls, options=options)
