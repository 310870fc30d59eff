"""Many rows in one INSERT, whatever their number.

A list of rows handed to ``session.execute(insert(table), rows)`` is sent as one
statement per row (psycopg pipelines them, but each is bound, sent, executed and
answered on its own); a batch of fifty checkouts' events, jobs and holds spent a
fifth of a consumer's CPU there. A multi-row ``VALUES`` is one statement, but its
text grows with the rows, so neither psycopg nor PostgreSQL can reuse it (parsing
it cost as much again). On PostgreSQL, :func:`insert_rows` sends one statement
whose text never changes, ``INSERT ... SELECT unnest(:col1), unnest(:col2), ...``,
each column's values in one array: parsed and planned once, any number of rows.
SQLite and a single row take the plain INSERT.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from sqlalchemy import Executable, Table, bindparam, func, insert, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session


def insert_rows(session: Session, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``rows`` (each naming the same columns) in the session's transaction."""
    if not rows:
        return
    if len(rows) == 1:
        session.execute(insert(table), dict(rows[0]))
        return
    if session.get_bind().dialect.name != "postgresql":
        session.execute(insert(table), [dict(row) for row in rows])
        return
    columns = tuple(rows[0])
    arrays = {f"a_{name}": [row[name] for row in rows] for name in columns}
    session.execute(_unnested(table, columns), arrays)


@cache
def _unnested(table: Table, columns: tuple[str, ...]) -> Executable:
    """``INSERT INTO table (columns) SELECT unnest(:a_col), ...``: set-returning
    functions in one select list run in step, so the arrays' n-th values are a row."""
    unnested = [
        func.unnest(bindparam(f"a_{name}", type_=ARRAY(table.c[name].type))) for name in columns
    ]
    return insert(table).from_select(list(columns), select(*unnested))
