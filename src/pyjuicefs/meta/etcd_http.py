"""The wire side of the etcd engine: etcd v3's JSON gRPC gateway through etcd3gw.

etcd3gw (OpenStack's pure-Python client of the gateway) gives us the HTTP session, the
/v3 paths and its exception classes; its generic `post` carries the few requests it has no method
for (range with revision and paging, txn compares, authenticate). On top we add what JuiceFS's Go
client gets from clientv3: several endpoints with fail-over, and user/password authentication
(a token in the Authorization header, renewed when etcd says it expired).
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
from typing import Any

import etcd3gw
import requests
from etcd3gw import exceptions as gwx
from requests.adapters import HTTPAdapter

from ..errors import MetaError, TransientMetaError, TxnConflict, UserError
from .etcd_url import EtcdAddr, _join_host

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT = 3.0  # seconds: a wrong or dead endpoint must fail fast
READ_TIMEOUT = 30.0
MAX_TXN_OPS = 128  # etcd's --max-txn-ops default (3.4 and 3.5)
MAX_REQUEST_BYTES = 3 << 19  # etcd's --max-request-bytes default: 1.5 MiB


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str | None) -> bytes:
    return base64.b64decode(text) if text else b""


def _server_message(e: gwx.Etcd3Exception) -> tuple[str, int]:
    """(message, gRPC code) of a gateway error body like {"error": "...", "code": 3}."""
    try:
        body = json.loads(e.detail_text or "")
        return str(body.get("message") or body.get("error") or ""), int(body.get("code", 0))
    except (ValueError, TypeError, AttributeError):
        return (e.detail_text or str(e) or type(e).__name__)[:200], 0


def _short_reason(e: BaseException) -> str:
    """'[Errno 111] Connection refused' out of requests' long connection error text."""
    text = getattr(e, "detail_text", None) or str(e)
    m = re.search(r"\[Errno -?\d+\] [^'\")]+|\[SSL[:\]][^'\"(]+", text)
    if m:
        return m.group(0).strip()
    if isinstance(e, gwx.ConnectionTimeoutError) or "timed out" in text.lower():
        return "timed out"
    if "etcdserver:" in text:
        return _server_message(e)[0] if isinstance(e, gwx.Etcd3Exception) else text[:200]
    return text[:200] or type(e).__name__


class _ServerNameAdapter(HTTPAdapter):
    """TLS with an expected certificate name that differs from the endpoint (`server-name`)."""

    def __init__(self, server_name: str, **kw: Any) -> None:
        self.server_name = server_name
        super().__init__(**kw)

    def init_poolmanager(self, *args: Any, **kw: Any) -> None:
        if self.server_name:
            kw["server_hostname"] = self.server_name
            kw["assert_hostname"] = self.server_name
        super().init_poolmanager(*args, **kw)


class EtcdHTTP:
    """One logical connection to an etcd cluster: calls go to the endpoint that last answered and
    move on to the next one when it cannot be reached."""

    def __init__(self, addr: EtcdAddr, connect_timeout: float = CONNECT_TIMEOUT,
                 read_timeout: float = READ_TIMEOUT) -> None:
        self.addr = addr
        self.session = requests.Session()
        tls = addr.tls
        protocol = "https" if tls else "http"
        adapter = _ServerNameAdapter(tls.server_name if tls else "", pool_connections=4, pool_maxsize=64)
        self.session.mount(f"{protocol}://", adapter)
        # per request: requests lets REQUESTS_CA_BUNDLE override a session-wide `verify`
        self._kw: dict[str, Any] = {}
        if tls:
            self._kw["verify"] = False if tls.insecure else (tls.cacert or True)
            if tls.cert:
                self.session.cert = (tls.cert, tls.key)
            if tls.insecure:
                import urllib3

                urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        # the gateway lives at /v3/ since etcd 3.4; naming it skips etcd3gw's /version discovery
        self.clients = [etcd3gw.client(host=h, port=p, protocol=protocol, api_path="/v3/",
                                       timeout=(connect_timeout, read_timeout),  # type: ignore[arg-type]
                                       session=self.session)
                        for h, p in addr.endpoints]
        self.current = 0
        self._auth_lock = threading.Lock()
        self._token: str | None = None  # None: not authenticated yet

    # --- calls -------------------------------------------------------------------------------------
    def call(self, path: str, body: dict[str, Any], *, rounds: int = 3) -> dict[str, Any]:
        """POST body to /v3/<path>; fail over between endpoints (`rounds` passes over all of them,
        with a short pause between passes) and renew the auth token once if etcd rejects it."""
        last: BaseException | None = None
        n = len(self.clients)
        for attempt in range(max(1, rounds) * n):
            if attempt and attempt % n == 0:
                time.sleep(0.2 * attempt / n)
            i = (self.current + attempt) % n
            c = self.clients[i]
            try:
                self._ensure_auth(c)
                used = self.session.headers.get("Authorization")
                try:
                    out = c.post(c.get_url(path), json=body, **self._kw)
                except gwx.Etcd3Exception as e:
                    msg, code = _server_message(e)
                    if code != 16 or not self.addr.user:  # 16: Unauthenticated (token expired/unknown)
                        raise
                    self._ensure_auth(c, failed=used)
                    out = c.post(c.get_url(path), json=body, **self._kw)
            except (gwx.ConnectionFailedError, gwx.ConnectionTimeoutError) as e:
                # refused, unreachable, timed out, or 503 "no leader": another member may answer
                logger.debug("etcd endpoint %s failed: %s", self._where(i), _short_reason(e))
                last = e
                continue
            except gwx.Etcd3Exception as e:
                raise self._translate(e, path) from None
            if i != self.current:
                logger.info("etcd: switched to endpoint %s", self._where(i))
                self.current = i
            return out
        assert last is not None
        raise TransientMetaError(f"cannot reach etcd at {self.addr.where}: {_short_reason(last)}")

    def _where(self, i: int) -> str:
        return _join_host(*self.addr.endpoints[i])

    def _ensure_auth(self, c: etcd3gw.Etcd3Client, failed: str | bytes | None = None) -> None:
        """Get a token if we have none, or a new one when etcd rejected the `failed` token."""
        if not self.addr.user or (self._token is not None and failed is None):
            return
        with self._auth_lock:
            if self._token is not None and self.session.headers.get("Authorization") != failed:
                return  # got meanwhile by another thread
            try:
                out = c.post(c.get_url("/auth/authenticate"),
                             json={"name": self.addr.user, "password": self.addr.password},
                             headers={"Authorization": None}, **self._kw)  # etcd checks a stale token even here
            except (gwx.ConnectionFailedError, gwx.ConnectionTimeoutError):
                raise
            except gwx.Etcd3Exception as e:
                msg, _ = _server_message(e)
                if "authentication is not enabled" in msg:  # clientv3 ignores it too
                    self._token = ""
                    return
                raise self._translate(e, "/auth/authenticate") from None
            self._token = str(out.get("token", ""))
            if self._token:
                self.session.headers["Authorization"] = self._token

    def _translate(self, e: gwx.Etcd3Exception, path: str) -> Exception:
        msg, code = _server_message(e)
        user = self.addr.user
        if "authentication failed" in msg:
            return UserError(f"etcd at {self.addr.where} rejected user {user!r}: invalid user name or password")
        if "user name is empty" in msg or (code == 16 and not user):
            return UserError(f"etcd at {self.addr.where} requires authentication: give "
                             "etcd://user:password@host:port/prefix (or user:@ with META_PASSWORD)")
        if "permission denied" in msg:
            return UserError(f"etcd user {user!r} has no permission on the keys of this volume "
                             f"(prefix {self.addr.prefix!r})")
        if "required revision has been compacted" in msg or "future revision" in msg:
            return TxnConflict(f"etcd: {msg}")
        if "too many operations in txn request" in msg:
            return MetaError(f"etcd refused a transaction of more than {MAX_TXN_OPS} operations "
                             "(its --max-txn-ops limit)")
        if "request is too large" in msg or "larger than max" in msg:
            return MetaError("etcd refused a request larger than its --max-request-bytes limit "
                             f"(1.5 MiB by default): {msg}")
        return MetaError(f"etcd {path}: {msg or e}")

    def close(self) -> None:
        self.session.close()
