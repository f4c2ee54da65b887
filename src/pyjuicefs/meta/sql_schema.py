"""The SQL tables of JuiceFS 1.4.2, as its xorm `Sync2` creates them on each dialect.

Captured from the reference binary (`juicefs format` on SQLite, PostgreSQL and MariaDB); the
golden copies live in tests/compat/data/sql/. Names of tables, columns and indexes must match
exactly: the reference client runs `Sync2` on every mount and would add duplicate indexes or
alter columns that differ. SQLite keeps the CREATE text, and xorm parses it back, so the text is
reproduced in xorm's own style.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Col:
    name: str
    kind: str  # bigint | int | varchar | text | varbinary255 | varbinary4096 | blob
    pk: bool = False
    autoincr: bool = False
    notnull: bool = True
    default: int | None = None


@dataclass(frozen=True, slots=True)
class Index:
    name: str  # suffix: xorm names them IDX_<table>_<name> / UQE_<table>_<name>
    cols: tuple[str, ...]
    unique: bool


@dataclass(frozen=True, slots=True)
class Table:
    name: str  # without the "jfs_" prefix
    cols: tuple[Col, ...]
    indexes: tuple[Index, ...] = ()
    pk: tuple[str, ...] = field(default=())  # a composite primary key

    def pk_cols(self) -> tuple[str, ...]:
        return self.pk or tuple(c.name for c in self.cols if c.pk)


def _c(name: str, kind: str, **kw: Any) -> Col:
    return Col(name, kind, **kw)


def _serial(name: str = "id", kind: str = "bigint") -> Col:
    return Col(name, kind, pk=True, autoincr=True)


def _null(name: str, kind: str = "int") -> Col:
    return Col(name, kind, notnull=False)


_QUOTA = (_c("max_space", "bigint"), _c("max_inodes", "bigint"), _c("used_space", "bigint"),
          _c("used_inodes", "bigint"))

# Order as JuiceFS 1.4.2 creates them (sqlite_master order does not matter for compatibility).
TABLES: tuple[Table, ...] = (
    Table("setting", (_c("name", "varchar", pk=True), _c("value", "text"))),
    Table("counter", (_c("name", "varchar", pk=True), _c("value", "bigint"))),
    Table("edge", (_serial(), _c("parent", "bigint"), _c("name", "varbinary255"), _c("inode", "bigint"),
                   _c("type", "int")),
          (Index("edge", ("parent", "name"), True), Index("inode", ("inode",), False))),
    Table("node", (
        _c("inode", "bigint", pk=True), _c("type", "int"), _c("flags", "int"), _c("mode", "int"),
        _c("uid", "int"), _c("gid", "int"), _c("atime", "bigint"), _c("mtime", "bigint"),
        _c("ctime", "bigint"), _c("atimensec", "int", default=0), _c("mtimensec", "int", default=0),
        _c("ctimensec", "int", default=0), _c("nlink", "int"), _c("length", "bigint"), _null("rdev"),
        _null("parent", "bigint"), _null("access_acl_id"), _null("default_acl_id"), _null("tier_id"))),
    Table("symlink", (_c("inode", "bigint", pk=True), _c("target", "varbinary4096"))),
    Table("xattr", (_serial(), _c("inode", "bigint"), _c("name", "varchar"), _c("value", "blob")),
          (Index("name", ("inode", "name"), True),)),
    Table("chunk", (_serial(), _c("inode", "bigint"), _c("indx", "int"), _c("slices", "blob")),
          (Index("chunk", ("inode", "indx"), True),)),
    Table("chunk_ref", (_c("chunkid", "bigint", pk=True), _c("size", "int"), _c("refs", "int")),
          (Index("refs", ("refs",), False),)),
    Table("delslices", (_c("chunkid", "bigint", pk=True), _c("deleted", "bigint"), _c("slices", "blob"))),
    Table("session2", (_c("sid", "bigint", pk=True), _c("expire", "bigint"), _null("info", "blob"))),
    Table("sustained", (_serial(), _c("sid", "bigint"), _c("inode", "bigint")),
          (Index("sustained", ("sid", "inode"), True),)),
    Table("delfile", (_c("inode", "bigint", pk=True), _c("length", "bigint"), _c("expire", "bigint"))),
    Table("flock", (_serial(), _c("inode", "bigint"), _c("sid", "bigint"), _c("owner", "bigint"),
                    _c("ltype", "int")),
          (Index("flock", ("inode", "sid", "owner"), True),)),
    Table("plock", (_serial(), _c("inode", "bigint"), _c("sid", "bigint"), _c("owner", "bigint"),
                    _c("records", "blob")),
          (Index("plock", ("inode", "sid", "owner"), True),)),
    Table("dir_quota", (_c("inode", "bigint", pk=True), *_QUOTA)),
    Table("dir_stats", (_c("inode", "bigint", pk=True), _c("data_length", "bigint"), _c("used_space", "bigint"),
                        _c("used_inodes", "bigint"))),
    Table("detached_node", (_c("inode", "bigint", pk=True), _c("added", "bigint"))),
    Table("acl", (_serial(kind="int"), _null("owner"), _null("group"), _null("mask"), _null("other"),
                  _null("named_users", "blob"), _null("named_groups", "blob"))),
    Table("user_group_quota", (_c("qtype", "int"), _c("qkey", "bigint"), *_QUOTA), pk=("qtype", "qkey")),
    Table("change_log", (_serial(), _c("entry", "text"))),
    Table("delegation_token", (_serial(kind="int"), _null("token", "blob"))),
)

TABLE_NAMES = tuple(t.name for t in TABLES)

_TYPES = {
    "sqlite3": {"bigint": "INTEGER", "int": "INTEGER", "varchar": "TEXT", "text": "TEXT",
                "varbinary255": "BLOB", "varbinary4096": "BLOB", "blob": "BLOB"},
    "postgres": {"bigint": "BIGINT", "int": "INTEGER", "varchar": "VARCHAR(255)", "text": "TEXT",
                 "varbinary255": "BYTEA", "varbinary4096": "BYTEA", "blob": "BYTEA"},
    "mysql": {"bigint": "BIGINT", "int": "INT", "varchar": "VARCHAR(255)", "text": "TEXT",
              "varbinary255": "VARBINARY(255)", "varbinary4096": "VARBINARY(4096)", "blob": "BLOB"},
}


def index_name(prefix: str, table: Table, idx: Index) -> str:
    return f"{'UQE' if idx.unique else 'IDX'}_{prefix}{table.name}_{idx.name}"


def _q(dialect: str, name: str) -> str:
    return f'"{name}"' if dialect == "postgres" else f"`{name}`"


def _col_ddl(dialect: str, t: Table, c: Col) -> str:
    q = _q(dialect, c.name)
    typ = _TYPES[dialect][c.kind]
    single_pk = c.pk and not t.pk
    if dialect == "postgres" and c.autoincr:
        return f"{q} {'BIGSERIAL' if c.kind == 'bigint' else 'SERIAL'} PRIMARY KEY NOT NULL"
    parts = [q, typ]
    if dialect == "sqlite3":  # xorm's order: PRIMARY KEY [AUTOINCREMENT] [DEFAULT] NOT NULL|NULL
        if single_pk:
            parts.append("PRIMARY KEY")
        if c.autoincr:
            parts.append("AUTOINCREMENT")
        if c.default is not None:
            parts.append(f"DEFAULT {c.default}")
        parts.append("NOT NULL" if c.notnull else "NULL")
        return " ".join(parts)
    parts.append("NOT NULL" if c.notnull else "NULL")
    if c.default is not None:
        parts.append(f"DEFAULT {c.default}")
    if dialect == "mysql" and c.autoincr:
        parts.append("AUTO_INCREMENT")
    if single_pk and dialect == "postgres":
        parts.append("PRIMARY KEY")
    return " ".join(parts)


def create_statements(dialect: str, prefix: str = "jfs_") -> list[str]:
    """CREATE TABLE/INDEX IF NOT EXISTS statements for every table, in order."""
    out: list[str] = []
    for t in TABLES:
        tname = _q(dialect, prefix + t.name)
        cols = [_col_ddl(dialect, t, c) for c in t.cols]
        if t.pk:
            keys = ",".join(_q(dialect, k) for k in t.pk)
            cols.append(f"PRIMARY KEY ( {keys} )" if dialect == "sqlite3" else f"PRIMARY KEY ({keys})")
        elif dialect == "mysql":
            cols.append(f"PRIMARY KEY ({','.join(_q(dialect, k) for k in t.pk_cols())})")
        if dialect == "mysql":  # MySQL has no CREATE INDEX IF NOT EXISTS: declare them inline
            for idx in t.indexes:
                kind = "UNIQUE KEY" if idx.unique else "KEY"
                cols.append(f"{kind} `{index_name(prefix, t, idx)}` ({','.join(_q(dialect, c) for c in idx.cols)})")
        tail = " ENGINE=InnoDB" if dialect == "mysql" else ""
        out.append(f"CREATE TABLE IF NOT EXISTS {tname} ({', '.join(cols)}){tail}")
        if dialect != "mysql":
            for idx in t.indexes:
                kind = "UNIQUE INDEX" if idx.unique else "INDEX"
                iname = _q(dialect, index_name(prefix, t, idx))
                cols_s = ",".join(_q(dialect, c) for c in idx.cols)
                out.append(f"CREATE {kind} IF NOT EXISTS {iname} ON {tname} ({cols_s})")
    return out


# --- introspection: a normalised description used by the compatibility tests ----------------

def describe(conn: Any, dialect: str, prefix: str = "jfs_") -> dict[str, Any]:
    """{table: {"columns": [[name, type, nullable, default, pk]], "indexes": {name: [unique, cols]}}}
    for every table whose name starts with `prefix`, read from the database's catalog. `conn` is a
    DB-API connection of the dialect's driver."""
    cur = conn.cursor()
    out: dict[str, Any] = {}

    def rows(sql: str, *args: Any) -> list[tuple]:
        cur.execute(sql, args)
        return [tuple(v.decode() if isinstance(v, bytes) else v for v in r) for r in cur.fetchall()]

    like = prefix.replace("_", "\\_") + "%"
    if dialect == "sqlite3":
        for (name, sql) in rows("SELECT name, sql FROM sqlite_master WHERE type='table' AND name LIKE ? "
                                "ESCAPE '\\' ORDER BY name", like):
            cols = [[r[1], r[2].upper(), not r[3], r[4], r[5]] for r in rows(f"PRAGMA table_info(`{name}`)")]
            idx: dict[str, Any] = {}
            for r in rows(f"PRAGMA index_list(`{name}`)"):
                if r[3] != "c":  # only explicitly created indexes (not pk/autoindex)
                    continue
                icols = [x[2] for x in rows(f"PRAGMA index_info(`{r[1]}`)")]
                idx[r[1]] = [bool(r[2]), icols]
            out[name] = {"columns": cols, "indexes": idx, "sql": sql}
        return out
    if dialect == "postgres":
        tables = [r[0] for r in rows(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
            "AND table_name LIKE %s ORDER BY table_name", like)]
        for name in tables:
            pks = [r[0] for r in rows(
                "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND i.indisprimary "
                "ORDER BY array_position(i.indkey, a.attnum)", name)]
            cols = []
            for r in rows("SELECT column_name, data_type, character_maximum_length, is_nullable, column_default "
                          "FROM information_schema.columns WHERE table_schema = current_schema() "
                          "AND table_name = %s ORDER BY ordinal_position", name):
                typ = r[1] + (f"({r[2]})" if r[2] else "")
                default = r[4]
                if default and default.startswith("nextval("):
                    default = "nextval"
                cols.append([r[0], typ, r[3] == "YES", default, (pks.index(r[0]) + 1) if r[0] in pks else 0])
            idx = {}
            for r in rows("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
                          "AND tablename = %s", name):
                if r[0].endswith("_pkey"):
                    continue
                inner = r[1][r[1].rindex("(") + 1:r[1].rindex(")")]
                idx[r[0]] = [" UNIQUE " in r[1], [c.strip().strip('"') for c in inner.split(",")]]
            out[name] = {"columns": cols, "indexes": idx}
        return out
    # mysql / mariadb
    tables = [r[0] for r in rows(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() "
        "AND table_name LIKE %s ORDER BY table_name", like)]
    for name in tables:
        cols = []
        for r in rows("SELECT column_name, column_type, is_nullable, column_default, column_key, extra "
                      "FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = %s "
                      "ORDER BY ordinal_position", name):
            default = r[3]
            if default == "NULL":  # MariaDB reports an explicit NULL default as the string NULL
                default = None
            cols.append([r[0], r[1].lower(), r[2] == "YES", default, r[4] == "PRI", r[5].lower()])
        idx = {}
        for r in rows("SELECT index_name, non_unique, column_name FROM information_schema.statistics "
                      "WHERE table_schema = DATABASE() AND table_name = %s ORDER BY index_name, seq_in_index", name):
            if r[0] == "PRIMARY":
                continue
            idx.setdefault(r[0], [not int(r[1]), []])[1].append(r[2])
        out[name] = {"columns": cols, "indexes": idx}
    return out
