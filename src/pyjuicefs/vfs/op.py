"""The wrapper of every public VFS operation: failures turned into FsError (timing is the FUSE adapter's)."""

from __future__ import annotations

import errno
import functools
import logging
from collections.abc import Callable
from typing import TypeVar

from ..errors import FsError, PyJuiceFSError, StorageError

log = logging.getLogger("pyjuicefs.vfs")
F = TypeVar("F", bound=Callable)


def op(fn: F) -> F:
    """Turn any failure of the call into FsError (EIO unless it has an errno)."""
    name = fn.__name__

    @functools.wraps(fn)
    def wrapper(self, *args, **kwargs):
        try:
            return fn(self, *args, **kwargs)
        except FsError:
            raise
        except StorageError as e:
            log.warning("%s: object storage: %s", name, e)
            raise FsError(errno.EIO) from e
        except OSError as e:
            if e.errno:
                raise FsError(e.errno) from e
            log.warning("%s: %s", name, e)
            raise FsError(errno.EIO) from e
        except PyJuiceFSError as e:
            log.warning("%s: %s", name, e)
            raise FsError(errno.EIO) from e
        except Exception as e:
            log.exception("%s failed", name)
            raise FsError(errno.EIO) from e

    return wrapper  # type: ignore[return-value]
