"""Tables of a Fathom database and the ordered migrations that create them.

Layout (all tables prefixed ``fathom_``):

- ``fathom_checkpoints``: one row per checkpoint. ``checkpoint`` is the serde-encoded checkpoint
  without the channel values that live in blobs; ``metadata`` is JSON (filterable); ``run_id`` is
  copied out of the metadata so ``delete_for_runs`` can use an index.
- ``fathom_blobs``: channel values keyed by ``(thread, ns, channel, version)``, written only when
  a checkpoint's ``new_versions`` names the channel, as the official Postgres saver does. A list
  value is stored as framed elements (type ``fathom.list``): either all of them, only the tail
  appended since ``base_version``, or none (a prefix of ``base_version``; see
  :mod:`fathom.store.checkpoints.codec`).
- ``fathom_writes``: pending writes, keyed like LangGraph's own savers.
- ``fathom_runs``: the run registry (:mod:`fathom.store.runs`).
- ``fathom_evals``, ``fathom_eval_items``: benchmark evaluations and their work queue
  (:mod:`fathom.store.eval`).
- ``fathom_judgements``: the LLM judge's verdicts, keyed by judge, question, gold and answer
  (:mod:`fathom.store.judgements`).
- ``fathom_migrations``: one row per applied migration. ``MIGRATIONS[i]`` brings the schema to
  version ``i + 1``; a database is upgraded in order on open, so a newer Fathom opens an older
  database, and a database newer than this code is refused.

Identifier columns compare and sort bytewise everywhere: ``TEXT COLLATE "C"`` on PostgreSQL,
UTF-8 in ``VARBINARY`` on MySQL/MariaDB (whose collations ignore case or trailing spaces), and
plain text on SQLite. Their MySQL widths keep each primary key under InnoDB's 3072 bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Connection,
    DateTime,
    Double,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    case,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

from fathom.store.errors import StoreError

# The one vocabulary of run statuses: the registry, ``fathom runs list --status``, ``--json`` and
# the exit codes all use these words.
#   running      in progress (or its process died: then ``runs list`` shows it interrupted)
#   waiting      paused at its plan review: ``fathom resume`` asks for a decision
#   interrupted  stopped before its end (killed, Ctrl-C, a model server down): resumable
#   answered     ended with an answer (and its report, when one was asked for and not declined)
#   failed       ended without an answer, or its report could not be written
# unanswered (migration 8): the model would not answer even when told to (its run did not fail).
RunStatus = Literal["running", "waiting", "interrupted", "answered", "unanswered", "failed"]
RUN_STATUSES: tuple[str, ...] = get_args(RunStatus)

_MYSQL = ("mysql", "mariadb")
_TABLE_OPTIONS: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
}


class _Utf8Bytes(TypeDecorator[str]):
    """A string stored as its UTF-8 bytes in ``VARBINARY``: compared and sorted bytewise.

    MySQL/MariaDB's binary collations still ignore trailing spaces (``'run' = 'run '``) on
    MariaDB and MySQL 5.7, and the default ones ignore case too; thread ids must not collide.
    """

    impl = mysql.VARBINARY
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> bytes | None:
        return value.encode() if isinstance(value, str) else value

    def process_result_value(self, value: bytes | None, dialect: Dialect) -> str | None:
        return value.decode() if isinstance(value, (bytes, bytearray)) else value


def _key(length: int) -> TypeEngine[str]:
    """An identifier column of up to ``length`` characters, compared bytewise on every backend."""
    return (
        String(length)
        .with_variant(postgresql.TEXT(collation="C"), "postgresql")
        .with_variant(_Utf8Bytes(4 * length), *_MYSQL)
    )


_BLOB = LargeBinary().with_variant(mysql.LONGBLOB(), *_MYSQL)
_LONG_TEXT = Text().with_variant(mysql.LONGTEXT(), *_MYSQL)
_JSON = JSON().with_variant(postgresql.JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on every backend.

    SQLite and MySQL store naive values, and PostgreSQL would read a naive value in the session
    time zone, so values are normalized to UTC on the way in and tagged UTC on the way out.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name in _MYSQL:  # DATETIME keeps whole seconds unless asked; runs sort by time
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware datetime (UTC)")
        value = value.astimezone(UTC)
        return value if dialect.name == "postgresql" else value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData()

migrations = Table(
    "fathom_migrations",
    metadata,
    Column("v", Integer, primary_key=True, autoincrement=False),
    **_TABLE_OPTIONS,
)

# Key widths: thread + ns + channel + version = 765 chars = 3060 bytes on MySQL (limit 3072).
checkpoints = Table(
    "fathom_checkpoints",
    metadata,
    Column("thread_id", _key(255), primary_key=True),
    Column("checkpoint_ns", _key(255), primary_key=True),
    Column("checkpoint_id", _key(64), primary_key=True),
    Column("parent_checkpoint_id", _key(64), nullable=True),
    Column("run_id", _key(255), nullable=True),
    Column("type", String(64), nullable=False),
    Column("checkpoint", _BLOB, nullable=False),
    Column("metadata", _JSON, nullable=False),
    Index("fathom_checkpoints_run_id_idx", "run_id"),
    **_TABLE_OPTIONS,
)

blobs = Table(
    "fathom_blobs",
    metadata,
    Column("thread_id", _key(255), primary_key=True),
    Column("checkpoint_ns", _key(255), primary_key=True),
    Column("channel", _key(191), primary_key=True),
    Column("version", _key(64), primary_key=True),
    Column("type", String(64), nullable=False),
    Column("blob", _BLOB, nullable=True),
    # incremental lists only (NULL otherwise): the version this tail extends, the element
    # count and prefix digest of the full value, and the number of links back to a snapshot
    Column("base_version", _key(64), nullable=True),
    Column("length", Integer, nullable=True),
    Column("digest", String(32), nullable=True),
    Column("depth", Integer, nullable=True),
    **_TABLE_OPTIONS,
)

writes = Table(
    "fathom_writes",
    metadata,
    Column("thread_id", _key(255), primary_key=True),
    Column("checkpoint_ns", _key(255), primary_key=True),
    Column("checkpoint_id", _key(64), primary_key=True),
    Column("task_id", _key(128), primary_key=True),
    Column("idx", Integer, primary_key=True, autoincrement=False),
    Column("channel", _key(191), nullable=False),
    Column("type", String(64), nullable=False),
    Column("blob", _BLOB, nullable=False),
    Column("task_path", Text, nullable=False),
    **_TABLE_OPTIONS,
)

def _runs_table(meta: MetaData, name: str, statuses: Sequence[str], *, indexed: bool = True) -> Table:
    """The run registry as migrations create it: ``statuses`` are the values its CHECK allows."""
    return Table(
        name,
        meta,
        Column("run_id", _key(255), primary_key=True),
        Column("question", _LONG_TEXT, nullable=False),
        Column("options", _JSON, nullable=True),
        Column("endpoints", _JSON, nullable=True),
        Column("status", String(16), nullable=False),
        Column("created_at", UTCDateTime(), nullable=False),
        Column("updated_at", UTCDateTime(), nullable=False),
        Column("rounds", Integer, nullable=False),
        Column("answer", _LONG_TEXT, nullable=True),
        Column("report", _LONG_TEXT, nullable=True),
        Column("error", _LONG_TEXT, nullable=True),
        CheckConstraint(_status_check(statuses), name=_RUNS_STATUS_CHECK),
        *([Index(_RUNS_CREATED_INDEX, "created_at")] if indexed else []),
        **_TABLE_OPTIONS,
    )


def _status_check(statuses: Sequence[str]) -> str:
    return "status IN (" + ", ".join(f"'{s}'" for s in statuses) + ")"


_RUNS_STATUS_CHECK = "fathom_runs_status_ck"
_RUNS_CREATED_INDEX = "fathom_runs_created_at_idx"
_V2_RUN_STATUSES = ("running", "interrupted", "failed", "done")  # before migration 5
_V5_RUN_STATUSES = ("running", "waiting", "interrupted", "answered", "failed")  # before migration 8
runs = _runs_table(metadata, "fathom_runs", RUN_STATUSES)

Migration = Callable[[Connection], None]


# Migrations create tables with checkfirst: MySQL commits DDL as it goes, so a migration that
# died half way is re-run from the top. When a later migration changes one of these tables,
# freeze the definition this migration created here instead of reusing the live Table object.
def _v1_checkpoint_tables(conn: Connection) -> None:
    metadata.create_all(conn, tables=[checkpoints, blobs, writes], checkfirst=True)


def _v2_run_registry(conn: Connection) -> None:
    _runs_table(MetaData(), runs.name, _V2_RUN_STATUSES).create(conn, checkfirst=True)


# ---- research-tool caches (migration 3) -------------------------------------------------------
# One row per search, page or evidence, keyed by the SHA-256 of its inputs (see
# fathom.store.cache), so URLs and queries of any length fit a primary key on every backend.
# ``stored_at`` is epoch seconds: the TTL is applied when reading, so a new TTL applies at once.
cache_search = Table(
    "fathom_cache_search",
    metadata,
    Column("cache_key", _key(64), primary_key=True),
    Column("backend", String(32), nullable=False),
    Column("query", Text, nullable=False),
    Column("top_k", Integer, nullable=False),
    Column("hits", _JSON, nullable=False),
    Column("stored_at", Double, nullable=False),
    Index("fathom_cache_search_stored_at_idx", "stored_at"),
    **_TABLE_OPTIONS,
)

cache_pages = Table(
    "fathom_cache_pages",
    metadata,
    Column("cache_key", _key(64), primary_key=True),
    Column("url", Text, nullable=False),
    Column("final_url", Text, nullable=True),
    Column("kind", String(16), nullable=True),
    Column("title", Text, nullable=True),
    Column("text", _LONG_TEXT, nullable=True),  # the extracted text, never the raw body
    Column("truncated", Boolean, nullable=False),
    Column("error", Text, nullable=True),  # a failure remembered briefly (HTTP 404, binary file)
    Column("stored_at", Double, nullable=False),
    Index("fathom_cache_pages_stored_at_idx", "stored_at"),
    **_TABLE_OPTIONS,
)

cache_evidence = Table(
    "fathom_cache_evidence",
    metadata,
    Column("cache_key", _key(64), primary_key=True),
    Column("url", Text, nullable=False),
    Column("goal", Text, nullable=False),
    Column("extractor", String(255), nullable=False),
    Column("text", _LONG_TEXT, nullable=False),
    Column("sources", _JSON, nullable=False),
    Column("stored_at", Double, nullable=False),
    Index("fathom_cache_evidence_stored_at_idx", "stored_at"),
    **_TABLE_OPTIONS,
)


def _v3_tool_caches(conn: Connection) -> None:
    metadata.create_all(conn, tables=[cache_search, cache_pages, cache_evidence], checkfirst=True)


# ---- local corpus (migration 4) ---------------------------------------------------------------
# Files indexed by ``fathom corpus index`` with their extracted text. The full-text index over
# title and body is the backend's own: an external-content FTS5 table kept in step by triggers
# on SQLite, a generated tsvector column with a GIN index on PostgreSQL, a FULLTEXT index on
# MySQL/MariaDB (whose text columns are case-insensitive here, or matching would be bytewise).
# A SQLite without FTS5 gets no index; search then falls back to LIKE (fathom.store.fulltext).
_FT_TEXT = Text().with_variant(mysql.TEXT(collation="utf8mb4_unicode_ci"), *_MYSQL)
_FT_LONG_TEXT = Text().with_variant(mysql.LONGTEXT(collation="utf8mb4_unicode_ci"), *_MYSQL)

corpus_roots = Table(
    "fathom_corpus_roots",
    metadata,
    Column("root_key", _key(64), primary_key=True),
    Column("path", Text, nullable=False),
    Column("indexed_at", UTCDateTime(), nullable=False),
    **_TABLE_OPTIONS,
)

corpus_files = Table(
    "fathom_corpus_files",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),  # the FTS5 rowid on SQLite
    Column("entry_key", _key(64), nullable=False, unique=True),  # digest of (root, path)
    Column("file_key", _key(64), nullable=False),  # digest of the path alone, for reads
    Column("root_key", _key(64), nullable=False),
    Column("path", Text, nullable=False),
    Column("mtime", Double, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("title", _FT_TEXT, nullable=False),
    Column("body", _FT_LONG_TEXT, nullable=False),
    Column("error", Text, nullable=True),  # why the file could not be read, if it could not
    Index("fathom_corpus_files_root_idx", "root_key"),
    Index("fathom_corpus_files_file_idx", "file_key"),
    **_TABLE_OPTIONS,
)

CORPUS_FTS = "fathom_corpus_fts"  # the SQLite FTS5 table
_SQLITE_FTS_DDL = (
    f"CREATE VIRTUAL TABLE IF NOT EXISTS {CORPUS_FTS} USING fts5(title, body, "
    "content='fathom_corpus_files', content_rowid='id', tokenize='porter unicode61')",
    "CREATE TRIGGER IF NOT EXISTS fathom_corpus_files_ai AFTER INSERT ON fathom_corpus_files BEGIN "
    f"INSERT INTO {CORPUS_FTS}(rowid, title, body) VALUES (new.id, new.title, new.body); END",
    "CREATE TRIGGER IF NOT EXISTS fathom_corpus_files_ad AFTER DELETE ON fathom_corpus_files BEGIN "
    f"INSERT INTO {CORPUS_FTS}({CORPUS_FTS}, rowid, title, body) "
    "VALUES ('delete', old.id, old.title, old.body); END",
    "CREATE TRIGGER IF NOT EXISTS fathom_corpus_files_au AFTER UPDATE OF title, body ON fathom_corpus_files "
    f"BEGIN INSERT INTO {CORPUS_FTS}({CORPUS_FTS}, rowid, title, body) "
    "VALUES ('delete', old.id, old.title, old.body); "
    f"INSERT INTO {CORPUS_FTS}(rowid, title, body) VALUES (new.id, new.title, new.body); END",
)
_POSTGRES_FTS_DDL = (
    "ALTER TABLE fathom_corpus_files ADD COLUMN IF NOT EXISTS tsv tsvector GENERATED ALWAYS AS ("
    "setweight(to_tsvector('english', title), 'A') || setweight(to_tsvector('english', body), 'B')) STORED",
    "CREATE INDEX IF NOT EXISTS fathom_corpus_files_tsv_idx ON fathom_corpus_files USING GIN (tsv)",
)


def sqlite_has_fts5(conn: Connection) -> bool:
    """Whether this SQLite library was built with FTS5."""
    options = {row[0] for row in conn.exec_driver_sql("PRAGMA compile_options")}
    return "ENABLE_FTS5" in options


def _v4_local_corpus(conn: Connection) -> None:
    metadata.create_all(conn, tables=[corpus_roots, corpus_files], checkfirst=True)
    dialect = conn.dialect.name
    if dialect == "sqlite" and sqlite_has_fts5(conn):
        for statement in _SQLITE_FTS_DDL:
            conn.exec_driver_sql(statement)
    elif dialect == "postgresql":
        for statement in _POSTGRES_FTS_DDL:
            conn.exec_driver_sql(statement)
    elif dialect in _MYSQL:
        indexes = {ix["name"] for ix in inspect(conn).get_indexes(corpus_files.name)}
        if "fathom_corpus_files_ft" not in indexes:  # MySQL DDL is not transactional: re-runnable
            conn.exec_driver_sql(
                "ALTER TABLE fathom_corpus_files ADD FULLTEXT INDEX fathom_corpus_files_ft (title, body)"
            )


# ---- one status vocabulary (migration 5) -------------------------------------------------------
# 'done' became 'answered', and a run paused at its plan review is 'waiting' (it was recorded
# 'interrupted'; such rows become 'waiting' when ``fathom resume`` next looks at them).
_RENAMED_STATUSES = {"done": "answered"}


def _v5_run_status_vocabulary(conn: Connection) -> None:
    _change_run_statuses(conn, _V5_RUN_STATUSES, _RENAMED_STATUSES, "v5")


def _change_run_statuses(conn: Connection, statuses: Sequence[str], renamed: dict[str, str], step: str) -> None:
    """Let the registry's CHECK allow ``statuses`` (exactly), renaming rows' statuses by ``renamed``."""
    dialect = conn.dialect.name
    if dialect == "sqlite":  # SQLite cannot change a CHECK constraint: copy into a new table
        _rebuild_sqlite_runs(conn, statuses, renamed, step)
        return
    if dialect == "postgresql":
        conn.exec_driver_sql(f"ALTER TABLE {runs.name} DROP CONSTRAINT IF EXISTS {_RUNS_STATUS_CHECK}")
    elif _has_check(conn):  # MySQL commits each DDL statement: every step may be re-run
        conn.exec_driver_sql(f"ALTER TABLE {runs.name} DROP CONSTRAINT {_RUNS_STATUS_CHECK}")
    for old, new in renamed.items():
        conn.execute(runs.update().where(runs.c.status == old).values(status=new))
    conn.exec_driver_sql(
        f"ALTER TABLE {runs.name} ADD CONSTRAINT {_RUNS_STATUS_CHECK} CHECK ({_status_check(statuses)})"
    )


def _has_check(conn: Connection) -> bool:
    found = conn.execute(
        text(
            "SELECT COUNT(*) FROM information_schema.TABLE_CONSTRAINTS WHERE TABLE_SCHEMA = DATABASE() "
            "AND TABLE_NAME = :table AND CONSTRAINT_NAME = :name"
        ),
        {"table": runs.name, "name": _RUNS_STATUS_CHECK},
    ).scalar()
    return bool(found)


def _rebuild_sqlite_runs(conn: Connection, statuses: Sequence[str], renamed: dict[str, str], step: str) -> None:
    """Copy ``fathom_runs`` into a table with the new CHECK, renaming statuses on the way."""
    staging = _runs_table(MetaData(), f"{runs.name}_{step}", statuses, indexed=False)
    staging.create(conn)
    status = case(renamed, value=runs.c.status, else_=runs.c.status) if renamed else runs.c.status
    columns = [status if column.name == "status" else column for column in runs.c]
    conn.execute(staging.insert().from_select([c.name for c in runs.c], select(*columns)))
    conn.exec_driver_sql(f"DROP TABLE {runs.name}")
    conn.exec_driver_sql(f"ALTER TABLE {staging.name} RENAME TO {runs.name}")
    conn.exec_driver_sql(f"CREATE INDEX {_RUNS_CREATED_INDEX} ON {runs.name} (created_at)")


# ---- benchmark evaluations (migration 6) ------------------------------------------------------
# An eval is a named run over one dataset; each of its items is one question with its gold
# answer, worked on by any number of processes (fathom.store.eval): a worker claims pending items
# (or items whose lease expired: their worker died) and holds them under a lease it renews; the
# finished item keeps the answer, the judge's verdict and the run's metrics. ``lease_until`` is
# epoch seconds. An item's research run is in ``fathom_runs`` under ``run_id``.
EvalItemStatus = Literal["pending", "claimed", "done", "failed"]
EVAL_ITEM_STATUSES: tuple[str, ...] = get_args(EvalItemStatus)

evals = Table(
    "fathom_evals",
    metadata,
    Column("name", _key(191), primary_key=True),
    Column("dataset", Text, nullable=False),
    Column("options", _JSON, nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    **_TABLE_OPTIONS,
)

eval_items = Table(
    "fathom_eval_items",
    metadata,
    Column("eval_name", _key(191), primary_key=True),
    Column("item_id", _key(255), primary_key=True),
    Column("position", Integer, nullable=False),  # the item's place in its dataset: claim order
    Column("question", _LONG_TEXT, nullable=False),
    Column("gold", _LONG_TEXT, nullable=False),
    Column("extra", _JSON, nullable=True),
    Column("status", String(16), nullable=False),
    Column("run_id", _key(255), nullable=True),
    Column("lease_owner", String(255), nullable=True),
    Column("lease_until", Double, nullable=True),
    Column("attempts", Integer, nullable=False),
    Column("verdict", String(16), nullable=True),
    Column("reason", _LONG_TEXT, nullable=True),
    Column("judge", String(255), nullable=True),
    Column("answer", _LONG_TEXT, nullable=True),
    Column("error", _LONG_TEXT, nullable=True),
    Column("metrics", _JSON, nullable=True),
    Column("updated_at", UTCDateTime(), nullable=False),
    CheckConstraint(_status_check(EVAL_ITEM_STATUSES), name="fathom_eval_items_status_ck"),
    Index("fathom_eval_items_claim_idx", "eval_name", "status", "lease_until"),
    Index("fathom_eval_items_owner_idx", "lease_owner"),
    **_TABLE_OPTIONS,
)


def _v6_evals(conn: Connection) -> None:
    metadata.create_all(conn, tables=[evals, eval_items], checkfirst=True)


# ---- the LLM judge's verdicts (migration 7) ----------------------------------------------------
# One row per graded answer, keyed by the SHA-256 of the judge's name (model and prompt digest),
# the question, the gold and the answer (fathom.eval.judges.cache_key), so re-judging an eval
# with the same judge asks no model, and a changed model or prompt never reuses a verdict.
judgements = Table(
    "fathom_judgements",
    metadata,
    Column("cache_key", _key(64), primary_key=True),
    Column("verdict", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("judge", String(255), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    **_TABLE_OPTIONS,
)


def _v7_judgements(conn: Connection) -> None:
    metadata.create_all(conn, tables=[judgements], checkfirst=True)


def _v8_unanswered_runs(conn: Connection) -> None:
    _change_run_statuses(conn, RUN_STATUSES, {}, "v8")


# ---- an eval's queue in dataset order (migration 9) ---------------------------------------------
# A claim walks an eval's pending items by position and stops at its limit; with only the index
# above, each claim sorted every pending item (15 ms a claim at 50,000 items, on the event loop).
# Part of the table (so migration 6 creates it on a new database); this adds it to older ones.
eval_queue_idx = Index("fathom_eval_items_queue_idx", eval_items.c.eval_name, eval_items.c.status,
                       eval_items.c.position, eval_items.c.item_id)


def _v9_eval_queue_order(conn: Connection) -> None:
    eval_queue_idx.create(conn, checkfirst=True)


MIGRATIONS: Sequence[Migration] = (
    _v1_checkpoint_tables,
    _v2_run_registry,
    _v3_tool_caches,
    _v4_local_corpus,
    _v5_run_status_vocabulary,
    _v6_evals,
    _v7_judgements,
    _v8_unanswered_runs,
    _v9_eval_queue_order,
)
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: Connection, migrations_to_apply: Sequence[Migration] = MIGRATIONS) -> int:
    """Bring the database to the newest schema inside the caller's transaction; return its version.

    Concurrent openers are serialized (``BEGIN IMMEDIATE`` on SQLite, an advisory lock on
    PostgreSQL, ``GET_LOCK`` on MySQL), so two processes opening a fresh database do not race.

    Raises:
        StoreError: the database has ``fathom_`` tables but no migrations table, or
            was migrated by a newer Fathom than this one.
    """
    dialect = conn.dialect.name
    if dialect == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(1717662824)"))  # b"fath"
    elif dialect in _MYSQL:
        conn.execute(text("SELECT GET_LOCK('fathom_migrations', 60)"))
    try:
        return _apply(conn, migrations_to_apply)
    finally:
        if dialect in _MYSQL:
            conn.execute(text("SELECT RELEASE_LOCK('fathom_migrations')"))


def _apply(conn: Connection, migrations_to_apply: Sequence[Migration]) -> int:
    tables = set(inspect(conn).get_table_names())
    if migrations.name in tables:
        current = conn.scalar(select(func.max(migrations.c.v))) or 0
    else:
        strays = sorted(name for name in tables if name.startswith("fathom_"))
        if strays:
            raise StoreError(
                f"not a Fathom database: it has {', '.join(strays)} but no {migrations.name} table"
            )
        migrations.create(conn)
        current = 0
    if current > len(MIGRATIONS):
        raise StoreError(
            f"database schema is version {current}, newer than this Fathom supports "
            f"({len(MIGRATIONS)}): upgrade Fathom"
        )
    for version in range(current, len(migrations_to_apply)):
        migrations_to_apply[version](conn)
        conn.execute(migrations.insert().values(v=version + 1))
    return max(current, len(migrations_to_apply))
