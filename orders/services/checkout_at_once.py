"""A checkout's rows in one statement, on PostgreSQL (the 202's hot path).

The general path writes the key, the checkout, its lines, its first event and its
first job as single-row statements in one transaction: nine round trips with BEGIN
and COMMIT, each a wait on a database that the pipeline keeps busy. Here one
statement of data-modifying CTEs writes them all, in autocommit (a statement is its
own transaction: all rows or none), after one read of the catalogue: two round trips.

The checkout id is drawn from its sequence first, so the key row can carry it; every
insert after the key's selects from the key's ``RETURNING``, so a key that is already
taken (``ON CONFLICT DO NOTHING``) writes nothing at all. The rows themselves are the
ones the general path writes (``checkout.prepare``, ``timeline.event_row``,
``jobs.job_row``); only the statement differs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from enum import Enum
from functools import cache
from typing import Any

from sqlalchemy import Connection, Table, TextClause, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from orders.db import utcnow
from orders.models.tables import CHECKOUTS, EVENTS, JOBS, LINES
from orders.services.checkout_rows import Prepared

_PG = postgresql.dialect()
LINE_COLUMNS = ("product_id", "sku", "name", "quantity", "unit_price_cents")


def supported(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


@contextmanager
def connection(session: Session) -> Iterator[Connection]:
    """A connection of the session's engine in autocommit (no BEGIN, no COMMIT)."""
    with session.get_bind().connect() as conn:  # type: ignore[union-attr]
        yield conn.execution_options(isolation_level="AUTOCOMMIT")


def write(
    conn: Connection,
    prepared: Prepared,
    event: Mapping[str, Any],
    job: Mapping[str, Any],
    key: str | None,
    request_hash: str,
) -> bool:
    """Write the checkout (and ``key``, if given) in one statement. False when the key
    was taken already: then nothing was written."""
    params: dict[str, Any] = {}
    checkout = _with_defaults(CHECKOUTS, prepared.checkout)
    params.update(_prefixed("c_", checkout))
    params.update(_prefixed("e_", event))
    params.update(_prefixed("j_", job))
    for name in LINE_COLUMNS:
        params[f"l_{name}"] = [line[name] for line in prepared.lines]
    if key is not None:
        params.update(key=key, request_hash=request_hash, key_created_at=utcnow())
    statement = _statement(tuple(checkout), tuple(event), tuple(job), with_key=key is not None)
    return conn.execute(statement, params).first() is not None


def _with_defaults(table: Table, row: Mapping[str, Any]) -> dict[str, Any]:
    """``row`` plus the column defaults an ``insert()`` would add (the scalar ones)."""
    return {**_scalar_defaults(table), **row}


@cache
def _scalar_defaults(table: Table) -> dict[str, Any]:
    """Read off the table once, not on every checkout (callers copy, never mutate)."""
    return {
        column.name: column.default.arg  # type: ignore[attr-defined]
        for column in table.c
        if column.default is not None and column.default.is_scalar
    }


def _prefixed(prefix: str, row: Mapping[str, Any]) -> dict[str, Any]:
    return {f"{prefix}{name}": v.value if isinstance(v, Enum) else v for name, v in row.items()}


@cache
def _statement(
    checkout: tuple[str, ...], event: tuple[str, ...], job: tuple[str, ...], *, with_key: bool
) -> TextClause:
    """Built once per shape. Every value is cast to its column's type: a NULL or a
    string alone in a SELECT list would otherwise be typed text."""
    ctes = ["ids AS (SELECT nextval(pg_get_serial_sequence('checkouts', 'id')) AS id)"]
    source = "ids"
    if with_key:
        ctes.append(
            "k AS (INSERT INTO idempotency_keys (key, request_hash, checkout_id, created_at) "
            "SELECT CAST(:key AS VARCHAR), CAST(:request_hash AS VARCHAR), ids.id, "
            "CAST(:key_created_at AS TIMESTAMP WITHOUT TIME ZONE) FROM ids "
            "ON CONFLICT (key) DO NOTHING RETURNING checkout_id AS id)"
        )
        source = "k"
    ctes.append(
        f"c AS (INSERT INTO checkouts (id, {', '.join(checkout)}) "
        f"SELECT {source}.id, {_values(CHECKOUTS, 'c_', checkout)} FROM {source} RETURNING id)"
    )
    arrays = ", ".join(f"CAST(:l_{name} AS {_type(LINES, name)}[])" for name in LINE_COLUMNS)
    ctes.append(
        f"l AS (INSERT INTO checkout_lines (checkout_id, {', '.join(LINE_COLUMNS)}) "
        f"SELECT c.id, u.* FROM c, unnest({arrays}) AS u({', '.join(LINE_COLUMNS)}))"
    )
    ctes.append(_insert_after("e", EVENTS, "e_", event))
    ctes.append(_insert_after("j", JOBS, "j_", job))
    return text(f"WITH {', '.join(ctes)} SELECT id FROM c")


def _insert_after(name: str, table: Table, prefix: str, columns: Sequence[str]) -> str:
    """``table``'s row for the new checkout (its ``checkout_id`` from ``c``)."""
    rest = [column for column in columns if column != "checkout_id"]
    return (
        f"{name} AS (INSERT INTO {table.name} (checkout_id, {', '.join(rest)}) "
        f"SELECT c.id, {_values(table, prefix, rest)} FROM c)"
    )


def _values(table: Table, prefix: str, columns: Sequence[str]) -> str:
    return ", ".join(f"CAST(:{prefix}{name} AS {_type(table, name)})" for name in columns)


def _type(table: Table, column: str) -> str:
    return str(table.c[column].type.compile(dialect=_PG))
