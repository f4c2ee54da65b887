"""Metadata engines. `new_engine(url)` imports a driver only when a URL asks for it."""

from __future__ import annotations

import importlib

from ..errors import UserError
from .engine import Engine

# scheme -> ("module:Class", pip extra that provides its driver)
_ENGINES: dict[str, tuple[str, str]] = {
    "redis": ("pyjuicefs.meta.redis:RedisEngine", "redis"),
    "rediss": ("pyjuicefs.meta.redis:RedisEngine", "redis"),
    "unix": ("pyjuicefs.meta.redis:RedisEngine", "redis"),
    "sqlite3": ("pyjuicefs.meta.sql:SQLEngine", ""),
    "postgres": ("pyjuicefs.meta.sql:SQLEngine", "pyjuicefs[postgres]"),
    "mysql": ("pyjuicefs.meta.sql:SQLEngine", "pyjuicefs[mysql]"),
    "etcd": ("pyjuicefs.meta.etcd:EtcdEngine", "pyjuicefs[etcd]"),
    "memkv": ("pyjuicefs.meta.memkv:MemKVEngine", ""),
}


def split_scheme(url: str) -> tuple[str, str]:
    """('redis', 'user:pass@host:6379/1') from 'redis://user:pass@host:6379/1'."""
    if "://" not in url:
        raise UserError(f"invalid metadata URL {url!r}: expected <scheme>://<address>, e.g. redis://localhost:6379/1")
    scheme, rest = url.split("://", 1)
    return scheme.lower(), rest


def new_engine(url: str, retries: int = 10) -> Engine:
    """Open the metadata engine named by `url` (does not contact the server until used)."""
    scheme, _ = split_scheme(url)
    if scheme not in _ENGINES:
        raise UserError(
            f"unknown metadata engine {scheme!r} in {redact_url(url)}; "
            f"supported: {', '.join(sorted(set(_ENGINES) - {'memkv'}))}"
        )
    target, extra = _ENGINES[scheme]
    mod_name, cls_name = target.split(":")
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as e:
        hint = f"; install it with `pip install {extra}`" if extra else ""
        raise UserError(f"the {scheme} engine needs a driver that is not installed ({e.name}){hint}") from None
    return getattr(mod, cls_name)(url, retries=retries)


def redact_url(url: str) -> str:
    """The URL with its password replaced by '****' (for messages and logs)."""
    if "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    at = rest.rfind("@")
    if at < 0:
        return url
    cred = rest[:at]
    if ":" in cred:
        cred = cred.split(":", 1)[0] + ":****"
    return f"{scheme}://{cred}{rest[at:]}"
