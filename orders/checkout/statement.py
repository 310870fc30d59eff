"""A checkout's rows in one statement, on PostgreSQL (the 202's hot path).

The general path writes the key, the checkout, its lines, its first event and its
first job as single-row statements in one transaction: nine round trips with BEGIN
and COMMIT, each a wait on a database that the pipeline keeps busy. Here one
statement of data-modifying CTEs writes them all, in autocommit (a statement is its
own transaction: all rows or none), after one read of the catalogue: two round trips.
The statement takes any number of checkouts (:func:`write_many`; a web process
writes the ones that arrive together in one: :mod:`orders.checkout.group`),
as two JSON parameters: one record per checkout, one per line.

Each checkout's id is drawn from its sequence first, so its key row can carry it; its
other rows are written only if its key was inserted by this statement, so a key that
is already taken (``ON CONFLICT DO NOTHING``) writes nothing of that checkout. The
rows themselves are the ones the general path writes (``checkout.prepare``,
``timeline.event_row``, ``jobs.job_row``); only the statement differs.

Most checkouts skip the read too: a web process remembers the products it read
(:class:`orders.checkout.rows.Catalogue`), and builds the rows from them;
the statement then writes only if every line's product still has that id, name and
price and the units in stock (``guarded``), in the same snapshot as its inserts.
When one has changed, nothing is written and the checkout is placed again from a
fresh read, so a remembered product never changes an answer: the price charged, or a
422, is always the live row's.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from functools import cache
from typing import Any

from sqlalchemy import ColumnDefault, Connection, Engine, Table
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from orders.checkout.rows import Prepared
from orders.db import utcnow
from orders.models.tables import CHECKOUTS, EVENTS, JOBS, LINES

_PG = postgresql.dialect()
LINE_COLUMNS = ("product_id", "sku", "name", "quantity", "unit_price_cents")


def supported(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


@contextmanager
def connection(engine: Engine) -> Iterator[Connection]:
    """A pooled connection in autocommit (no BEGIN, no COMMIT)."""
    with engine.connect() as conn:
        yield conn.execution_options(isolation_level="AUTOCOMMIT")


@dataclass(frozen=True)
class Pending:
    """One checkout's rows, to be written (``key``: its Idempotency-Key, if any;
    ``guarded``: write it only if its products are as in its lines, see ``write``)."""

    prepared: Prepared
    event: Mapping[str, Any]
    job: Mapping[str, Any]
    key: str | None
    request_hash: str
    guarded: bool


Written = tuple[bool, int | None]
"""(fresh, checkout id): fresh is False when a guard did not hold (nothing written);
the id is None when the key was taken (nothing written)."""


def write(
    conn: Connection,
    prepared: Prepared,
    event: Mapping[str, Any],
    job: Mapping[str, Any],
    key: str | None,
    request_hash: str,
    *,
    guarded: bool = False,
) -> bool | None:
    """Write the checkout (and ``key``, if given) in one statement. False when the key
    was taken already: then nothing was written. ``guarded``: write only if every
    line's product (id, name, unit price) is as in ``prepared`` and has its units in
    stock; None (nothing written) if not."""
    fresh, checkout_id = write_many(
        conn, [Pending(prepared, event, job, key, request_hash, guarded)]
    )[0]
    if not fresh:
        return None
    return checkout_id is not None


def write_many(conn: Connection, pending: Sequence[Pending]) -> list[Written]:
    """Write several checkouts in one statement (one per shape of rows: in practice
    one), each as ``write`` would alone: its guard and its key are its own, so one
    checkout refused writes nothing of it and leaves the others written."""
    by_shape: dict[tuple[tuple[str, ...], ...], list[int]] = {}
    rows = []
    for index, one in enumerate(pending):
        checkout = _with_defaults(CHECKOUTS, one.prepared.checkout)
        rows.append(checkout)
        by_shape.setdefault((tuple(checkout), tuple(one.event), tuple(one.job)), []).append(index)
    written: list[Written] = [(False, None)] * len(pending)
    for shape, indexes in by_shape.items():
        params = _batch_params(shape, [(pending[i], rows[i]) for i in indexes])
        for n, fresh, checkout_id in execute_on_driver(conn, _statement(*shape), params, many=True):
            written[indexes[n]] = (fresh, checkout_id)
    return written


def _batch_params(
    shape: tuple[tuple[str, ...], ...], batch: Sequence[tuple[Pending, Mapping[str, Any]]]
) -> dict[str, Any]:
    """Two JSON documents: one record per checkout (``items``) and one per line
    (``lines``, with its checkout's position ``n``): two parameters to send, whatever
    the batch's size (one array per column cost more to build and to send)."""
    now = utcnow()
    items = []
    lines = []
    for n, (one, checkout) in enumerate(batch):
        record = {
            "n": n,
            "guarded": one.guarded,
            "lines": len(one.prepared.lines),
            "key": one.key,
            "request_hash": one.request_hash if one.key is not None else None,
            "key_created_at": now if one.key is not None else None,
        }
        for prefix, row in (("c_", checkout), ("e_", one.event), ("j_", one.job)):
            for name, value in row.items():
                record[f"{prefix}{name}"] = value
        items.append(record)
        lines += [{"n": n, **line} for line in one.prepared.lines]
    return {"items": _json(items), "lines": _json(lines)}


def _json(records: list[dict[str, Any]]) -> str:
    return json.dumps(records, default=_plain, separators=(",", ":"))


def _plain(value: Any) -> Any:
    """What JSON lacks: timestamps (ISO 8601, read back by PostgreSQL's own input
    function) and enums (their values)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def execute_on_driver(
    conn: Connection, sql: str, params: Mapping[str, Any], *, many: bool = False
) -> Any:
    """One statement on the driver's own cursor; its one row (``many``: all its rows).

    The statement is compiled once per shape (``_statement``), so what SQLAlchemy adds
    per execution (an execution context, result metadata, row processing) is all
    overhead here: it was ~40 % of the client's CPU for this statement (0.45 -> 0.25
    ms per checkout measured in one process, the same statement on the same connection;
    the driver still prepares it server-side after a few runs). Errors are raised as
    SQLAlchemy's, with the connection invalidated when the driver says it is gone, as
    ``Connection.execute`` would (the 503 handler and the pool rely on both)."""
    dbapi_connection = conn.connection.dbapi_connection
    assert dbapi_connection is not None
    base = conn.dialect.loaded_dbapi.Error
    try:
        with closing(dbapi_connection.cursor()) as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall() if many else cursor.fetchone()
    except base as exc:
        gone = conn.dialect.is_disconnect(exc, dbapi_connection, None)
        if gone:
            conn.invalidate(exc)
        raise DBAPIError.instance(
            sql,
            dict(params),
            exc,
            base,
            hide_parameters=conn.engine.hide_parameters,
            connection_invalidated=gone,
            dialect=conn.dialect,
        ) from exc


def _with_defaults(table: Table, row: Mapping[str, Any]) -> dict[str, Any]:
    """``row`` plus the column defaults an ``insert()`` would add (the scalar ones)."""
    return {**_scalar_defaults(table), **row}


@cache
def _scalar_defaults(table: Table) -> dict[str, Any]:
    """Read off the table once, not on every checkout (callers copy, never mutate)."""
    return {
        column.name: column.default.arg
        for column in table.c
        if isinstance(column.default, ColumnDefault) and column.default.is_scalar
    }


_ITEM_COLUMNS = {  # per checkout, besides its rows' columns
    "n": "INTEGER",
    "guarded": "BOOLEAN",
    "lines": "INTEGER",
    "key": "VARCHAR",
    "request_hash": "VARCHAR",
    "key_created_at": "TIMESTAMP WITHOUT TIME ZONE",
}


@cache
def _statement(checkout: tuple[str, ...], event: tuple[str, ...], job: tuple[str, ...]) -> str:
    """Built once per shape, as the driver's SQL: one row per checkout in ``i``, one
    per line in ``g``, read from the JSON parameters as records of the columns' own
    types. Its rows: (n, fresh, id) per checkout, in order."""
    item = dict(_ITEM_COLUMNS)
    for prefix, table, columns in (
        ("c_", CHECKOUTS, checkout),
        ("e_", EVENTS, event),
        ("j_", JOBS, job),
    ):
        item.update({f"{prefix}{name}": _type(table, name) for name in columns})
    line = {"n": "INTEGER", **{name: _type(LINES, name) for name in LINE_COLUMNS}}
    ctes = [
        _records("i", item, "items"),
        _records("g", line, "lines"),
        "s AS (SELECT CAST(pg_get_serial_sequence('checkouts', 'id') AS regclass) AS seq)",
        # a guarded checkout's lines must each find its product as read, with its
        # units in stock: or it gets no id, and nothing of it is written
        "ids AS (SELECT i.n, nextval(s.seq) AS id FROM i, s WHERE NOT i.guarded OR "
        "(SELECT COUNT(*) FROM products p JOIN g ON p.id = g.product_id AND p.name = g.name "
        "AND p.price_cents = g.unit_price_cents AND p.stock >= g.quantity WHERE g.n = i.n) "
        "= i.lines)",
        "k AS (INSERT INTO idempotency_keys (key, request_hash, checkout_id, created_at) "
        "SELECT i.key, i.request_hash, ids.id, i.key_created_at FROM ids JOIN i USING (n) "
        "WHERE i.key IS NOT NULL ON CONFLICT (key) DO NOTHING RETURNING checkout_id AS id)",
        # written: no key, or a key this statement inserted (not one taken already)
        "w AS (SELECT ids.n, ids.id FROM ids JOIN i USING (n) "
        "WHERE i.key IS NULL OR ids.id IN (SELECT id FROM k))",
        _insert("c", CHECKOUTS, "id", checkout, "i.c_"),
        _insert("l", LINES, "checkout_id", LINE_COLUMNS, "g."),
        _insert("e", EVENTS, "checkout_id", event, "i.e_"),
        _insert("j", JOBS, "checkout_id", job, "i.j_"),
    ]
    return (
        f"WITH {', '.join(ctes)} SELECT i.n, ids.id IS NOT NULL AS fresh, w.id AS id "
        "FROM i LEFT JOIN ids USING (n) LEFT JOIN w USING (n) ORDER BY i.n"
    )


def _records(name: str, columns: Mapping[str, str], param: str) -> str:
    types = ", ".join(f"{column} {kind}" for column, kind in columns.items())
    return (
        f"{name} AS (SELECT * FROM json_to_recordset(CAST(%({param})s AS json)) AS {name}({types}))"
    )


def _insert(name: str, table: Table, id_column: str, columns: Sequence[str], source: str) -> str:
    """``table``'s rows for the written checkouts (``w``): ``id_column`` the new id, the
    other columns from ``source`` (``i.c_``: the checkout's values; ``g.``: its lines')."""
    rest = [column for column in columns if column != id_column]
    values = ", ".join(f"{source}{column}" for column in rest)
    return (
        f"{name} AS (INSERT INTO {table.name} ({id_column}, {', '.join(rest)}) "
        f"SELECT w.id, {values} FROM w JOIN {source.split('.')[0]} USING (n))"
    )


def _type(table: Table, column: str) -> str:
    return str(table.c[column].type.compile(dialect=_PG))
