"""Many rows in one INSERT, whatever their number.

A list of rows handed to ``session.execute(insert(table), rows)`` is sent as one
statement per row (psycopg pipelines them, but each is bound, sent, executed and
answered on its own); a batch of fifty checkouts' events, jobs and holds spent a
fifth of a consumer's CPU there. A multi-row ``VALUES`` is one statement, but its
text grows with the rows, so neither psycopg nor PostgreSQL can reuse it (parsing
it cost as much again). On PostgreSQL, :func:`insert_rows` sends one statement
whose text never changes, ``INSERT ... SELECT unnest(:col1), unnest(:col2), ...``,
each column's values in one array: parsed and planned once, any number of rows. A
column whose value is the same in every row (a batch's job type, queue, status...)
is bound once instead: psycopg dumps an array's values one by one, in Python.
SQLite and a single row take the plain INSERT.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from sqlalchemy import Column, Executable, Table, bindparam, func, insert, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session


def insert_rows(
    session: Session,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    returning: tuple[Column[Any], ...] = (),
) -> list[tuple[Any, ...]]:
    """Insert ``rows`` (each naming the same columns, every column with a default
    among them) in the session's transaction; the ``returning`` columns of the rows
    added, in no particular order."""
    if not rows:
        return []
    columns = _with_defaults(table, tuple(rows[0]))
    if len(rows) == 1 or session.get_bind().dialect.name != "postgresql":
        statement = _plain(table, returning)
        values: Any = dict(rows[0]) if len(rows) == 1 else [dict(row) for row in rows]
    else:
        first = rows[0]
        same = tuple(name for name in columns if all(row[name] == first[name] for row in rows))
        if len(same) == len(columns):  # the rows are alike: one array still counts them
            same = same[1:]
        statement = _unnested(table, columns, same, returning)
        values = {f"s_{name}": first[name] for name in same}
        values.update({f"a_{n}": [row[n] for row in rows] for n in columns if n not in same})
    result = session.execute(statement, values)
    return [tuple(row) for row in result] if returning else []


@cache
def _with_defaults(table: Table, columns: tuple[str, ...]) -> tuple[str, ...]:
    """``columns``, if they include every column with a default (an INSERT from a
    SELECT fills none: rows that count on one would differ by backend)."""
    missing = [c.name for c in table.columns if c.default is not None and c.name not in columns]
    if missing:
        raise ValueError(f"rows for {table.name} must give {', '.join(missing)}")
    return columns


@cache
def _plain(table: Table, returning: tuple[Column[Any], ...]) -> Executable:
    statement = insert(table)
    return statement.returning(*returning) if returning else statement


@cache
def _unnested(
    table: Table,
    columns: tuple[str, ...],
    same: tuple[str, ...],
    returning: tuple[Column[Any], ...],
) -> Executable:
    """``INSERT INTO table (columns) SELECT unnest(:a_col), :s_col, ...``: set-returning
    functions in one select list run in step, so the arrays' n-th values are a row;
    a column of ``same`` is one value, repeated on every row."""
    values = [
        bindparam(f"s_{name}", type_=table.c[name].type)
        if name in same
        else func.unnest(bindparam(f"a_{name}", type_=ARRAY(table.c[name].type)))
        for name in columns
    ]
    statement = insert(table).from_select(list(columns), select(*values))
    return statement.returning(*returning) if returning else statement
