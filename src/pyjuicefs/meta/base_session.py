"""Client sessions in the Meta API: registration, heartbeat, and the cleanup of dead sessions
(their locks are released and the unlinked files they kept open are deleted).
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import socket
import time
from typing import TYPE_CHECKING

from .. import JUICEFS_COMPAT_VERSION, __version__
from .engine import SessionRecord, Txn

if TYPE_CHECKING:
    from .base import Meta

logger = logging.getLogger(__name__)


def _local_ips() -> list[str]:
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None)
    except OSError:
        return []
    return sorted({i[4][0] for i in infos if not i[4][0].startswith(("127.", "::1"))})


class SessionOps:
    def _expire_time(self: Meta) -> float:
        hb = self.conf.heartbeat
        return time.time() + (hb * 5 if hb > 0 else 365 * 24 * 3600)

    def session_info(self: Meta) -> bytes:
        """The SessionInfo JSON that `juicefs status` shows (field names as JuiceFS)."""
        info = {
            "Version": f"{JUICEFS_COMPAT_VERSION}+pyjuicefs-{__version__}",
            "HostName": socket.gethostname(),
            "IPAddrs": _local_ips(),
            "MountPoint": self.conf.mount_point,
            "MountTime": datetime.datetime.now().astimezone().isoformat(),
            "ProcessID": os.getpid(),
        }
        return json.dumps(info, separators=(",", ":")).encode()

    def new_session(self: Meta, record: bool = True) -> int:
        """Register this client; returns its session id (0 when read-only or not recorded)."""
        self._format()
        if self.conf.read_only or not record:
            return self.sid
        if self.sid == 0:
            self.sid = self.engine.incr_counter("nextSession", 1)
        self.engine.save_session(self.sid, self._expire_time(), self.session_info())
        logger.info("create session %d OK with version %s", self.sid, JUICEFS_COMPAT_VERSION)
        return self.sid

    def refresh_session(self: Meta) -> None:
        """Heartbeat: push this session's expiry further (call every `conf.heartbeat`)."""
        if self.conf.read_only or self.sid == 0:
            return
        self.engine.refresh_session(self.sid, self._expire_time())
        self.flush_stats()

    def list_sessions(self: Meta) -> list[SessionRecord]:
        return sorted(self.engine.list_sessions(), key=lambda s: s.sid)

    def clean_stale_sessions(self: Meta, before: float | None = None) -> list[int]:
        """Clean sessions that expired before `before` (now by default); returns their ids."""
        edge = time.time() if before is None else before
        cleaned = []
        for s in self.engine.list_sessions():
            if s.expire < edge and s.sid != self.sid:
                try:
                    self.clean_session(s.sid)
                    cleaned.append(s.sid)
                except OSError as e:
                    logger.warning("clean up stale session %d: %s", s.sid, e)
        return cleaned

    def clean_session(self: Meta, sid: int) -> None:
        """Release what session `sid` held, then remove its records."""
        flocks, plocks = self.engine.list_session_locks(sid)

        def drop_flocks(tx: Txn, ino: int) -> None:
            for s, o in list(tx.get_flocks(ino)):
                if s == sid:
                    tx.delete_flock(ino, s, o)

        def drop_plocks(tx: Txn, ino: int) -> None:
            for s, o in list(tx.get_plocks(ino)):
                if s == sid:
                    tx.set_plock(ino, s, o, b"")

        for ino in flocks:
            self._txn(lambda tx, ino=ino: drop_flocks(tx, ino))
        for ino in plocks:
            self._txn(lambda tx, ino=ino: drop_plocks(tx, ino))
        for ino in self.engine.get_sustained(sid):
            self._delete_sustained(sid, ino)
        self.engine.delete_session(sid)
        logger.info("cleaned up session %d", sid)

    def close_session(self: Meta) -> None:
        """Unmount: flush statistics, delete files kept open by this client, drop the session."""
        self.flush_stats()
        if self.conf.read_only:
            return
        with self._lock:
            removed, self._removed = set(self._removed), set()
            self._open.clear()
        for ino in removed:
            self._delete_sustained(self.sid, ino)
        if self.sid:
            self.clean_session(self.sid)
            self.sid = 0
