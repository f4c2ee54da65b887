"""What differs between SQLite, PostgreSQL and MySQL/MariaDB: URLs, connections, transaction
starts, upserts, and which driver errors mean "retry", "connection lost" or "bad input".

URLs are JuiceFS's:
  sqlite3://relative/x.db   sqlite3:///abs/x.db?_busy_timeout=5000
  postgres://user:pass@host:5432/db?sslmode=disable&search_path=schema
  mysql://user:pass@(host:3306)/db   (Go DSN; also tcp(host:port), unix(/path) and plain host:port)
Query parameters that JuiceFS consumes itself (table_prefix, max_open_conns…) are accepted too.
Drivers are imported only when a connection is opened.
"""

from __future__ import annotations

import importlib
import os
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

from ..errors import UserError

CONNECT_TIMEOUT = 5  # seconds: bad input fails fast
LOCK_WAIT_TIMEOUT = 10  # MySQL: seconds a statement waits for a row lock before we retry the txn

# parameters JuiceFS reads itself and never passes to the driver
_JFS_PARAMS = {"max_open_conns", "max_idle_conns", "max_idle_time", "max_life_time", "table_prefix"}

RETRY = "retry"
CONN = "conn"


def _driver(name: str, scheme: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        extra = {"postgres": "pyjuicefs[postgres]", "mysql": "pyjuicefs[mysql]"}[scheme]
        raise UserError(f"the {scheme} engine needs the {name} driver; install it with `pip install {extra}`") from None


@dataclass
class Dialect:
    """A parsed metadata URL plus the SQL flavour of its database."""

    name: str  # sqlite3 | postgres | mysql
    prefix: str = "jfs_"  # table prefix
    host: str = ""
    port: int = 0
    user: str = ""
    password: str = ""
    database: str = ""  # database name (PG/MySQL) or file path (SQLite)
    params: dict[str, str] = field(default_factory=dict)
    unix_socket: str = ""
    busy_timeout_ms: int = 5000

    # --- naming -----------------------------------------------------------------------------
    def where(self) -> str:
        """Where the database is, for messages (never with the password)."""
        if self.name == "sqlite3":
            return f"SQLite database {self.database}"
        kind = "PostgreSQL" if self.name == "postgres" else "MySQL"
        addr = self.unix_socket or f"{self.host}:{self.port}"
        return f"{kind} at {addr}"

    def t(self, table: str) -> str:
        return self.prefix + table

    def sql(self, s: str) -> str:
        """Our statements use `?` placeholders; the network drivers want `%s`."""
        return s if self.name == "sqlite3" else s.replace("?", "%s")

    @property
    def for_update(self) -> str:
        return "" if self.name == "sqlite3" else " FOR UPDATE"

    def upsert(self, table: str, cols: list[str], keys: list[str], mode: dict[str, str] | None = None,
               ignore: bool = False) -> str:
        """INSERT of `cols` that, on a duplicate `keys`, updates the other columns: mode maps a
        column to "set" (default), "add" (old + new) or "concat" (old || new). With `ignore` (or
        no other columns) the duplicate row is left as it is."""
        t = self.t(table)
        mode = mode or {}
        ph = ",".join("?" * len(cols))
        rest = [] if ignore else [c for c in cols if c not in keys]
        if self.name == "mysql":
            if not rest:
                return f"INSERT IGNORE INTO {t} ({','.join(cols)}) VALUES ({ph})"
            sets = []
            for c in rest:
                m = mode.get(c, "set")
                new = f"VALUES({c})"
                sets.append(f"{c}={c}+{new}" if m == "add" else f"{c}=CONCAT({c},{new})" if m == "concat"
                            else f"{c}={new}")
            return f"INSERT INTO {t} ({','.join(cols)}) VALUES ({ph}) ON DUPLICATE KEY UPDATE {','.join(sets)}"
        head = f"INSERT INTO {t} ({','.join(cols)}) VALUES ({ph}) ON CONFLICT ({','.join(keys)})"
        if not rest:
            return head + " DO NOTHING"
        sets = []
        for c in rest:
            m = mode.get(c, "set")
            concat = f"{t}.{c}||excluded.{c}"
            if self.name == "sqlite3":  # `||` makes TEXT in SQLite; keep the value a BLOB
                concat = f"CAST({concat} AS BLOB)"
            sets.append(f"{c}={t}.{c}+excluded.{c}" if m == "add" else f"{c}={concat}" if m == "concat"
                        else f"{c}=excluded.{c}")
        return f"{head} DO UPDATE SET {','.join(sets)}"

    # --- connections ------------------------------------------------------------------------
    def connect(self) -> Any:
        """A new DB-API connection in autocommit mode (transactions are begun explicitly)."""
        if self.name == "sqlite3":
            return self._connect_sqlite()
        if self.name == "postgres":
            return self._connect_pg()
        return self._connect_mysql()

    def _connect_sqlite(self) -> Any:
        import sqlite3

        path = self.database
        d = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(d):
            raise UserError(f"cannot open {self.where()}: directory {d} does not exist")
        try:
            conn = sqlite3.connect(path, timeout=self.busy_timeout_ms / 1000, isolation_level=None,
                                   check_same_thread=False)
            # JuiceFS's `slices || ?` leaves TEXT values holding raw bytes: read every TEXT as bytes
            conn.text_factory = bytes
            conn.execute(f"PRAGMA busy_timeout = {self.busy_timeout_ms}")
            # the reference client opens with _journal=WAL; keep the file in the same mode
            journal = self.params.get("_journal") or self.params.get("_journal_mode") or "WAL"
            conn.execute(f"PRAGMA journal_mode = {journal}").fetchall()
        except sqlite3.DatabaseError as e:
            raise UserError(f"cannot open {self.where()}: {e}") from None
        return conn

    def _connect_pg(self) -> Any:
        psycopg = _driver("psycopg", "postgres")
        kw: dict[str, Any] = {k: v for k, v in self.params.items() if k not in _JFS_PARAMS | {"search_path"}}
        kw.setdefault("connect_timeout", str(CONNECT_TIMEOUT))
        if self.params.get("search_path"):
            kw["options"] = f"{kw.get('options', '')} -c search_path={self.params['search_path']}".strip()
        if self.host:
            kw["host"] = self.host
        if self.port:
            kw["port"] = self.port
        if self.user:
            kw["user"] = self.user
        if self.password:
            kw["password"] = self.password
        kw["dbname"] = self.database
        kw["application_name"] = "pyjuicefs"
        try:
            return psycopg.connect(autocommit=True, **kw)
        except psycopg.Error as e:
            raise UserError(self._explain_connect_error(str(e))) from None

    def _connect_mysql(self) -> Any:
        pymysql = _driver("pymysql", "mysql")
        kw: dict[str, Any] = {
            "user": self.user or "root", "password": self.password, "database": self.database,
            "connect_timeout": CONNECT_TIMEOUT, "autocommit": True, "binary_prefix": True,
            "charset": self.params.get("charset", "utf8mb4").split(",")[0],
            # rowcount of UPDATE counts matched rows, not changed ones
            "client_flag": pymysql.constants.CLIENT.FOUND_ROWS,
        }
        if self.unix_socket:
            kw["unix_socket"] = self.unix_socket
        else:
            kw["host"], kw["port"] = self.host, self.port
        try:
            conn = pymysql.connect(**kw)
            with conn.cursor() as cur:
                cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                cur.execute(f"SET SESSION innodb_lock_wait_timeout = {LOCK_WAIT_TIMEOUT}")
            return conn
        except pymysql.Error as e:
            code = e.args[0] if e.args and isinstance(e.args[0], int) else 0
            msg = str(e.args[1]) if len(e.args) > 1 else str(e)
            raise UserError(self._explain_connect_error(msg, code)) from None

    def _explain_connect_error(self, msg: str, code: int = 0) -> str:
        low = msg.lower()
        who = self.where()
        if code == 1049 or ("database" in low and "does not exist" in low) or "unknown database" in low:
            text = (f"database {self.database!r} does not exist on {who}; create it first "
                    f"(JuiceFS does not create databases)")
        elif code == 1045 or "password authentication failed" in low:
            text = f"{who} rejected user {self.user!r}: wrong password or user"
        elif "no password supplied" in low:
            text = f"{who} needs a password for user {self.user!r}: put it in the URL or in META_PASSWORD"
        elif "role" in low and "does not exist" in low:
            text = f"user {self.user!r} does not exist on {who}"
        elif code == 2003 or "connection refused" in low or "could not connect" in low or "timeout" in low \
                or "timed out" in low or "translate host name" in low or "name or service not known" in low:
            reason = "connection refused" if "refused" in low else "timed out" if "time" in low else \
                "unknown host" if ("host name" in low or "not known" in low) else msg.strip().splitlines()[-1]
            text = f"cannot connect to {who}: {reason}"
        else:
            text = f"cannot use {who}: {msg.strip().splitlines()[0] if msg.strip() else msg}"
        if self.password:
            text = text.replace(self.password, "****")
        return text

    def begin(self, conn: Any, *, readonly: bool, read_committed: bool = False) -> None:
        """Start a transaction: SQLite takes the write lock up front (one writer at a time);
        PostgreSQL and MySQL run REPEATABLE READ (READ COMMITTED for blind counter updates)."""
        if self.name == "sqlite3":
            conn.execute(f"PRAGMA query_only = {int(readonly)}")  # a write in a read txn fails
            conn.execute("BEGIN" if readonly else "BEGIN IMMEDIATE")
            return
        with conn.cursor() as cur:
            if self.name == "postgres":
                level = "READ COMMITTED" if read_committed else "REPEATABLE READ"
                cur.execute(f"BEGIN ISOLATION LEVEL {level}{' READ ONLY' if readonly else ''}")
            else:
                if read_committed:
                    cur.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
                cur.execute("START TRANSACTION READ ONLY" if readonly else "START TRANSACTION")

    # --- error classification ------------------------------------------------------------------
    def classify(self, exc: BaseException) -> str | None:
        """RETRY for conflicts worth re-running the txn, CONN for a lost connection, else None."""
        if self.name == "sqlite3":
            import sqlite3

            if isinstance(exc, sqlite3.OperationalError):
                low = str(exc).lower()
                if "locked" in low or "busy" in low:
                    return RETRY
            return None
        if self.name == "postgres":
            psycopg = importlib.import_module("psycopg")
            if isinstance(exc, (psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected,
                                psycopg.errors.UniqueViolation, psycopg.errors.LockNotAvailable,
                                psycopg.errors.TooManyConnections)):
                return RETRY
            if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
                return CONN
            return None
        pymysql = importlib.import_module("pymysql")
        if isinstance(exc, pymysql.err.Error) and exc.args and isinstance(exc.args[0], int):
            code = exc.args[0]
            if code in (1213, 1205, 1020, 1062, 1040, 1180):
                return RETRY
            if code in (2003, 2006, 2013, 2014, 2055, 0):
                return CONN
        if isinstance(exc, pymysql.err.InterfaceError):
            return CONN
        return None

    def is_missing_table(self, exc: BaseException) -> bool:
        low = str(exc).lower()
        return "no such table" in low or ("relation" in low and "does not exist" in low) or \
            (bool(getattr(exc, "args", None)) and exc.args[0] == 1146)


def parse_url(url: str) -> Dialect:
    """The Dialect of a metadata URL; UserError (with no password in it) when malformed."""
    if "://" not in url:
        raise UserError("invalid metadata URL: expected sqlite3://, postgres:// or mysql://")
    scheme, rest = url.split("://", 1)
    scheme = scheme.lower()
    rest, _, query = rest.partition("?")
    try:
        params = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)))
    except ValueError:
        raise UserError(f"invalid query string in the {scheme} URL: {query!r}") from None
    prefix = "jfs_" + (params["table_prefix"] + "_" if params.get("table_prefix") else "")
    if not re.fullmatch(r"[A-Za-z0-9_]+", prefix):
        raise UserError(f"invalid table_prefix {params['table_prefix']!r}: use letters, digits and _")
    if scheme == "sqlite3":
        if not rest:
            raise UserError("invalid sqlite3 URL: no file path, e.g. sqlite3:///var/lib/jfs.db")
        d = Dialect("sqlite3", prefix=prefix, database=unquote(rest), params=params)
        for k in ("_busy_timeout", "_timeout"):
            if k in params:
                try:
                    d.busy_timeout_ms = int(params[k])
                except ValueError:
                    raise UserError(f"invalid {k} {params[k]!r} in the sqlite3 URL: expected milliseconds") from None
        return d
    if scheme in ("postgres", "postgresql"):
        return _parse_pg(rest, params, prefix)
    if scheme == "mysql":
        return _parse_mysql(rest, params, prefix)
    raise UserError(f"unsupported SQL engine {scheme!r}")


def _split_cred(cred: str) -> tuple[str, str]:
    user, sep, password = cred.partition(":")
    user = unquote(user)
    password = unquote(password) if sep else ""
    if not password:
        password = os.environ.get("META_PASSWORD", "")
    return user, password


def _host_port(addr: str, default_port: int, kind: str) -> tuple[str, int]:
    if not addr:
        return "127.0.0.1", default_port
    if addr.startswith("["):  # [ipv6]:port
        host, _, rest = addr[1:].partition("]")
        port_s = rest[1:] if rest.startswith(":") else ""
    elif addr.count(":") == 1:
        host, _, port_s = addr.partition(":")
    else:
        host, port_s = addr, ""
    if port_s and not port_s.isdigit():
        raise UserError(f"invalid port {port_s!r} in the {kind} URL")
    port = int(port_s) if port_s else default_port
    if not 0 < port < 65536:
        raise UserError(f"invalid port {port} in the {kind} URL")
    return unquote(host) or "127.0.0.1", port


def _parse_pg(rest: str, params: dict[str, str], prefix: str) -> Dialect:
    at = rest.rfind("@")
    cred, hostpart = (rest[:at], rest[at + 1:]) if at >= 0 else ("", rest)
    addr, slash, db = hostpart.partition("/")
    if not slash or not db:
        raise UserError("invalid postgres URL: no database name, e.g. postgres://user:pass@host:5432/juicefs")
    if "," in params.get("search_path", ""):
        raise UserError("only one schema is supported in search_path")
    user, password = _split_cred(cred)
    d = Dialect("postgres", prefix=prefix, user=user, password=password, database=unquote(db), params=params)
    if addr:
        d.host, d.port = _host_port(addr, 5432, "postgres")
    elif params.get("host"):
        d.unix_socket = params["host"]
    else:
        d.host, d.port = "127.0.0.1", 5432
    return d


def _parse_mysql(rest: str, params: dict[str, str], prefix: str) -> Dialect:
    slash = rest.rfind("/")
    if slash < 0 or not rest[slash + 1:]:
        raise UserError("invalid mysql URL: no database name, e.g. mysql://user:pass@(host:3306)/juicefs")
    head, db = rest[:slash], unquote(rest[slash + 1:])
    at = head.rfind("@")
    cred, netaddr = (head[:at], head[at + 1:]) if at >= 0 else ("", head)
    user, password = _split_cred(cred)
    d = Dialect("mysql", prefix=prefix, user=user, password=password, database=db, params=params)
    m = re.fullmatch(r"(\w*)\((.*)\)", netaddr)
    net, addr = (m.group(1) or "tcp", m.group(2)) if m else ("tcp", netaddr)
    if net == "unix":
        d.unix_socket = addr or "/tmp/mysql.sock"
    elif net == "tcp":
        d.host, d.port = _host_port(addr, 3306, "mysql")
    else:
        raise UserError(f"invalid mysql URL: unknown network {net!r} (use tcp(host:port) or unix(/path))")
    return d
