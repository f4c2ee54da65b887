"""The wrapper of every public VFS operation: counted for .stats, failures turned into FsError."""

from __future__ import annotations

import errno
import functools
import logging
import time
from collections.abc import Callable
from typing import TypeVar

from ..errors import FsError, PyJuiceFSError, StorageError

log = logging.getLogger("pyjuicefs.vfs")
F = TypeVar("F", bound=Callable)


def op(fn: F) -> F:
    """Count the call for .stats and turn any failure into FsError (EIO unless it has an errno)."""
    name = fn.__name__

    @functools.wraps(fn)
    def wrapper(self, *args, **kwargs):
        t0 = time.monotonic()
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
        finally:
            self.stats.op(name, time.monotonic() - t0)

    return wrapper  # type: ignore[return-value]
