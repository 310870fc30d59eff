"""INSERT ... ON CONFLICT for the two backends (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import cache
from typing import Any

from sqlalchemy import Executable, Row, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def upsert(
    session: Session,
    table: Table,
    values: Mapping[str, Any],
    keys: Sequence[str],
    *,
    add: Sequence[str] = (),
    replace: Sequence[str] = (),
) -> None:
    """Insert ``values``; on a key conflict add the ``add`` columns and set ``replace`` ones."""
    dialect = session.get_bind().dialect.name
    stmt = _statement(dialect, table, tuple(values), tuple(keys), tuple(add), tuple(replace))
    session.execute(stmt, dict(values))


@cache
def _statement(
    dialect: str,
    table: Table,
    columns: tuple[str, ...],
    keys: tuple[str, ...],
    add: tuple[str, ...],
    replace: tuple[str, ...],
) -> Executable:
    """Built once per shape (values are bound at execution): building and hashing a
    20-column upsert on every call cost more than running it."""
    stmt = _insert(dialect)(table)
    changes: dict[str, Any] = {name: table.c[name] + stmt.excluded[name] for name in add}
    changes.update({name: stmt.excluded[name] for name in replace})
    return stmt.on_conflict_do_update(index_elements=list(keys), set_=changes)


def insert_unless_present(
    session: Session, table: Table, values: Mapping[str, Any], keys: Sequence[str]
) -> Row[Any] | None:
    """Insert ``values`` unless a row with the same ``keys`` exists: the new row's primary
    key back, or None. While another transaction holds an uncommitted row with the same
    key, this waits for it to end (on PostgreSQL the unique index; on SQLite the write
    lock) and then sees what it left. (The row added also carries ``keys``.)"""
    added = insert_each_unless_present(session, table, [values], keys)
    return added[0] if added else None


def insert_each_unless_present(
    session: Session, table: Table, rows: Sequence[Mapping[str, Any]], keys: Sequence[str]
) -> list[Row[Any]]:
    """:func:`insert_unless_present` for many rows in one statement: the rows added,
    each as its primary key and ``keys``, in no particular order."""
    if not rows:
        return []
    dialect = session.get_bind().dialect.name
    stmt = _unless_present(dialect, table, tuple(keys))
    return list(session.execute(stmt, [dict(row) for row in rows]).all())


@cache
def _unless_present(dialect: str, table: Table, keys: tuple[str, ...]) -> Executable:
    stmt = _insert(dialect)(table).on_conflict_do_nothing(index_elements=list(keys))
    return stmt.returning(*table.primary_key.columns, *(table.c[key] for key in keys))


def _insert(dialect: str) -> Callable[[Table], postgresql.Insert | sqlite.Insert]:
    return postgresql.insert if dialect == "postgresql" else sqlite.insert
