"""INSERT ... ON CONFLICT for the two backends (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from sqlalchemy import Executable, Table
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
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(table)
    changes: dict[str, Any] = {name: table.c[name] + stmt.excluded[name] for name in add}
    changes.update({name: stmt.excluded[name] for name in replace})
    return stmt.on_conflict_do_update(index_elements=list(keys), set_=changes)
