"""The volume settings (JuiceFS's `Format`), persisted as JSON in the metadata engine.

Field names, order and omit-empty rules follow JuiceFS 1.4 (pkg/meta/config.go) so that either
client reads what the other wrote. Fields we do not model are kept and written back untouched.
Secrets are stored encrypted with AES-GCM keyed by md5(UUID), as JuiceFS does.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from dataclasses import dataclass, field, fields
from typing import Any

from . import JUICEFS_COMPAT_VERSION
from .errors import UserError
from .meta.types import MAX_META_VERSION

# (name, omitempty) in JuiceFS's struct order.
_FIELDS: list[tuple[str, bool]] = [
    ("Name", False), ("UUID", False), ("Storage", False), ("StorageClass", True), ("Tiers", True),
    ("Bucket", False), ("AccessKey", True), ("SecretKey", True), ("SessionToken", True),
    ("BlockSize", False), ("Compression", True), ("Shards", True), ("HashPrefix", True),
    ("Capacity", True), ("Inodes", True), ("EncryptKey", True), ("EncryptAlgo", True),
    ("KeyEncrypted", True), ("UploadLimit", True), ("DownloadLimit", True), ("TrashDays", False),
    ("MetaVersion", True), ("MinClientVersion", True), ("MaxClientVersion", True),
    ("DirStats", True), ("UserGroupQuota", True), ("EnableACL", False), ("RangerRestUrl", True),
    ("RangerService", True), ("ChangeLog", True), ("KerbConf", True),
]
_KNOWN = {n for n, _ in _FIELDS}


@dataclass
class Format:
    Name: str = ""
    UUID: str = ""
    Storage: str = "file"
    StorageClass: str = ""
    Tiers: Any = None
    Bucket: str = ""
    AccessKey: str = ""
    SecretKey: str = ""
    SessionToken: str = ""
    BlockSize: int = 4096  # KiB
    Compression: str = "none"
    Shards: int = 0
    HashPrefix: bool = False
    Capacity: int = 0  # bytes
    Inodes: int = 0
    EncryptKey: str = ""
    EncryptAlgo: str = ""
    KeyEncrypted: bool = False
    UploadLimit: int = 0  # Mbps
    DownloadLimit: int = 0  # Mbps
    TrashDays: int = 1
    MetaVersion: int = 0
    MinClientVersion: str = ""
    MaxClientVersion: str = ""
    DirStats: bool = False
    UserGroupQuota: bool = False
    EnableACL: bool = False
    RangerRestUrl: str = ""
    RangerService: str = ""
    ChangeLog: bool = False
    KerbConf: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # fields of newer clients, kept as read

    # --- JSON ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, omitempty in _FIELDS:
            v = getattr(self, name)
            if omitempty and not v:
                continue
            out[name] = v
        out.update(self.extra)
        return out

    def to_json(self, indent: int | None = None) -> bytes:
        """JSON as JuiceFS writes it: stored with json.MarshalIndent(f, "", "") (one field per
        line, no indentation; checked against the binary in tests/compat/test_golden.py),
        printed indented two spaces."""
        text = json.dumps(self.to_dict(), indent="" if indent is None else indent, ensure_ascii=False)
        # Go's encoder keeps non-ASCII as UTF-8 but escapes these (only strings can hold them).
        for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                        ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
            text = text.replace(ch, esc)
        return text.encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> "Format":
        try:
            d = json.loads(raw)
        except ValueError as e:
            raise UserError(f"invalid volume settings in the metadata engine: {e}") from None
        if not isinstance(d, dict):
            raise UserError("invalid volume settings in the metadata engine: not a JSON object")
        f = cls()
        f.Compression = ""
        for k, v in d.items():
            if k in _KNOWN:
                setattr(f, k, v)
            else:
                f.extra[k] = v
        return f

    def copy(self) -> "Format":
        return Format.from_json(self.to_json())

    def redacted(self) -> "Format":
        """A copy safe to print: secrets replaced by 'removed' (JuiceFS RemoveSecret)."""
        f = self.copy()
        for k in ("SecretKey", "SessionToken", "EncryptKey"):
            if getattr(f, k):
                setattr(f, k, "removed")
        return f

    def __str__(self) -> str:
        return self.redacted().to_json(indent=2).decode()

    # --- secrets ---------------------------------------------------------------------------
    def _aead(self):
        if self.EncryptAlgo == "sm4gcm":
            raise UserError("secrets encrypted with sm4gcm are not supported by pyjuicefs")
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        return AESGCM(hashlib.md5(self.UUID.encode()).digest())

    def encrypt(self) -> None:
        """Encrypt SecretKey/SessionToken/EncryptKey in place (before storing)."""
        if self.KeyEncrypted or not (self.SecretKey or self.SessionToken or self.EncryptKey):
            return
        aead = self._aead()
        for k in ("SecretKey", "SessionToken", "EncryptKey"):
            v = getattr(self, k)
            if v:
                nonce = os.urandom(12)
                setattr(self, k, base64.b64encode(nonce + aead.encrypt(nonce, v.encode(), None)).decode())
        self.KeyEncrypted = True

    def decrypt(self) -> None:
        """Decrypt the secrets in place (after loading)."""
        if not self.KeyEncrypted:
            return
        aead = self._aead()
        for k in ("EncryptKey", "SecretKey", "SessionToken"):
            v = getattr(self, k)
            if not v:
                continue
            if v == "removed":
                raise UserError("secret was removed; please correct it with `config` command")
            try:
                buf = base64.b64decode(v)
                setattr(self, k, aead.decrypt(buf[:12], buf[12:], None).decode())
            except Exception as e:  # noqa: BLE001 - any failure means a corrupt secret
                raise UserError(f"cannot decrypt {k} of the volume: {e}") from None
        self.KeyEncrypted = False

    # --- versions --------------------------------------------------------------------------
    def check_version(self) -> None:
        """Refuse volumes newer than we understand, and honour client version gates."""
        if self.MetaVersion > MAX_META_VERSION:
            raise UserError(
                f"incompatible metadata version: {self.MetaVersion} (this client supports up to "
                f"{MAX_META_VERSION}); please upgrade the client"
            )
        ours = parse_version(JUICEFS_COMPAT_VERSION)
        if self.MinClientVersion and ours < parse_version(self.MinClientVersion):
            raise UserError(f"allowed minimum version: {self.MinClientVersion}; please upgrade the client")
        if self.MaxClientVersion and ours > parse_version(self.MaxClientVersion):
            raise UserError(f"allowed maximum version: {self.MaxClientVersion}; please use an older client")


def parse_version(v: str) -> tuple[int, int, int]:
    """major.minor.patch of a JuiceFS version string such as '1.1.0-A' or '1.4.2+2026-10-26'."""
    m = re.match(r"^v?(\d+)\.(\d+)(?:\.(\d+))?", v.strip())
    if not m:
        raise UserError(f"invalid client version: {v!r}")
    return int(m[1]), int(m[2]), int(m[3] or 0)


FORMAT_FIELD_NAMES = [f.name for f in fields(Format) if f.name != "extra"]
