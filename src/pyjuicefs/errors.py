"""One error hierarchy for the whole package.

Translated in exactly three places: the FUSE adapter (errno), the network front ends (protocol
errors) and the CLI (one line and an exit code, never a traceback for a UserError).
"""

from __future__ import annotations

import errno as _errno
import os


class PyJuiceFSError(Exception):
    """Base of every error raised on purpose by pyjuicefs."""


class UserError(PyJuiceFSError):
    """Bad input or an unusable environment: the CLI prints the message and exits with exit_code."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class FsError(PyJuiceFSError, OSError):
    """A POSIX error from a file system operation; carries errno."""

    def __init__(self, err: int, message: str | None = None) -> None:
        super().__init__(err, message or os.strerror(err))

    @classmethod
    def of(cls, err: int) -> "FsError":
        return cls(err)


def fs_error(name: str) -> FsError:
    """FsError by errno name, e.g. fs_error('ENOENT')."""
    return FsError(getattr(_errno, name))


# --- storage -------------------------------------------------------------------------------


class StorageError(PyJuiceFSError):
    """An object storage operation failed."""


class ObjectNotFound(StorageError, FileNotFoundError):
    """The object (or the bucket) does not exist."""


class TransientStorageError(StorageError):
    """A failure worth retrying: timeouts, connection resets, 5xx, throttling."""


class StorageAuthError(StorageError):
    """Credentials rejected or access forbidden."""


# --- metadata ------------------------------------------------------------------------------


class MetaError(PyJuiceFSError):
    """A metadata engine operation failed."""


class TransientMetaError(MetaError):
    """A failure worth retrying: connection lost, serialization conflict, deadlock."""


class TxnConflict(TransientMetaError):
    """An optimistic transaction lost a race; the caller re-runs it."""


class NotFormatted(MetaError, UserError):
    """The metadata engine holds no volume."""

    def __init__(self, message: str = "database is not formatted, please run `pyjuicefs format ...` first") -> None:
        UserError.__init__(self, message)
