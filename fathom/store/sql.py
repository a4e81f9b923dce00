"""SQL that differs by dialect and is shared across the store: the upsert."""

from __future__ import annotations

from functools import cache

from sqlalchemy import Table
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.sql.dml import Insert

__all__ = ["upsert_statement"]


@cache
def upsert_statement(dialect: str, table: Table, update_columns: tuple[str, ...]) -> Insert:
    """INSERT into ``table`` that overwrites ``update_columns`` on a key clash (none: keeps the row).

    ``INSERT … ON CONFLICT`` on SQLite and PostgreSQL, ``ON DUPLICATE KEY UPDATE`` on MySQL and
    MariaDB: concurrent writers of one key never collide. The values come as execution
    parameters (or from ``.from_select``), so one statement per table and column set is built,
    and cached.
    """
    pk = [c.name for c in table.primary_key.columns]
    if dialect in ("sqlite", "postgresql"):
        stmt = (sqlite.insert if dialect == "sqlite" else postgresql.insert)(table)
        if update_columns:
            return stmt.on_conflict_do_update(
                index_elements=pk, set_={c: stmt.excluded[c] for c in update_columns}
            )
        return stmt.on_conflict_do_nothing(index_elements=pk)
    upsert_mysql = mysql.insert(table)
    if update_columns:
        return upsert_mysql.on_duplicate_key_update({c: upsert_mysql.inserted[c] for c in update_columns})
    # "Do nothing" in MySQL: set a key column to the value it already has (the clash is on the
    # key). INSERT IGNORE would also swallow real errors such as truncation.
    return upsert_mysql.on_duplicate_key_update({pk[0]: upsert_mysql.inserted[pk[0]]})
