"""INSERT ... ON CONFLICT for the two backends (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Table
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
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(table).values(**values)
    changes: dict[str, Any] = {name: table.c[name] + stmt.excluded[name] for name in add}
    changes.update({name: stmt.excluded[name] for name in replace})
    session.execute(stmt.on_conflict_do_update(index_elements=list(keys), set_=changes))
