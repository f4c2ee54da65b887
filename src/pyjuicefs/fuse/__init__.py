"""The FUSE front end: a thin pyfuse3 adapter over the VFS (adapter.py), the conversions it needs
(convert.py) and the session runner (session.py). Imports pyfuse3: only `pyjuicefs mount` loads it."""

from .adapter import FuseOps
from .session import fuse_options, serve

__all__ = ["FuseOps", "fuse_options", "serve"]
