"""pyjuicefs: JuiceFS, the distributed POSIX file system, in Python."""

__version__ = "0.1.0"
# The JuiceFS version we claim to be, for MinClientVersion/MaxClientVersion checks and for
# session records that the reference client reads (JuiceFS compares major.minor.patch).
JUICEFS_COMPAT_VERSION = "1.4.2"
