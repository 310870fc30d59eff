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

Most checkouts skip the read too: a web process remembers the products it read
(:class:`Catalogue`), and builds the rows from them; the statement then writes only
if every line's product still has that id, name and price and the units in stock
(``guarded``), in the same snapshot as its inserts. When one has changed, nothing is
written and the checkout is placed again from a fresh read, so a remembered product
never changes an answer: the price charged, or a 422, is always the live row's.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from enum import Enum
from functools import cache
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Engine, Table, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from orders.db import utcnow
from orders.domain.validation import ItemRequest
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


class Catalogue:
    """The products a web process read last, by engine and SKU (prices and names
    change rarely; every use is checked against the live row: see ``write``)."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._by_engine: WeakKeyDictionary[Engine, dict[str, Any]] = WeakKeyDictionary()

    def products(self, conn: Connection, items: Sequence[ItemRequest]) -> dict[str, Any] | None:
        """Every item's remembered product, or None if one is not remembered."""
        known = self._by_engine.get(conn.engine)
        if not known:
            return None
        try:
            return {item.sku: known[item.sku] for item in items}
        except KeyError:
            return None

    def remember(self, conn: Connection, products: Mapping[str, Any]) -> None:
        known = self._by_engine.setdefault(conn.engine, {})
        if len(known) + len(products) > self.size:
            known.clear()
        known.update(products)


CATALOGUE = Catalogue()


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
    params: dict[str, Any] = {}
    checkout = _with_defaults(CHECKOUTS, prepared.checkout)
    params.update(_prefixed("c_", checkout))
    params.update(_prefixed("e_", event))
    params.update(_prefixed("j_", job))
    for name in LINE_COLUMNS:
        params[f"l_{name}"] = [line[name] for line in prepared.lines]
    if key is not None:
        params.update(key=key, request_hash=request_hash, key_created_at=utcnow())
    if guarded:
        params["lines"] = len(prepared.lines)
    statement = _statement(
        tuple(checkout), tuple(event), tuple(job), with_key=key is not None, guarded=guarded
    )
    fresh, checkout_id = execute_on_driver(conn, statement, params)
    if not fresh:
        return None
    return checkout_id is not None


def execute_on_driver(conn: Connection, sql: str, params: Mapping[str, Any]) -> Any:
    """One statement on the driver's own cursor; its one row.

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
        with dbapi_connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()
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
        column.name: column.default.arg  # type: ignore[attr-defined]
        for column in table.c
        if column.default is not None and column.default.is_scalar
    }


def _prefixed(prefix: str, row: Mapping[str, Any]) -> dict[str, Any]:
    return {f"{prefix}{name}": v.value if isinstance(v, Enum) else v for name, v in row.items()}


@cache
def _statement(
    checkout: tuple[str, ...],
    event: tuple[str, ...],
    job: tuple[str, ...],
    *,
    with_key: bool,
    guarded: bool,
) -> str:
    """Built once per shape, as the driver's SQL. Every value is cast to its column's
    type: a NULL or a string alone in a SELECT list would otherwise be typed text."""
    arrays = ", ".join(f"CAST(:l_{name} AS {_type(LINES, name)}[])" for name in LINE_COLUMNS)
    guard = ""
    if guarded:  # every line's product as read, with its units in stock, or no id at all
        guard = (
            f" WHERE (SELECT COUNT(*) FROM products p JOIN unnest({arrays}) "
            f"AS g({', '.join(LINE_COLUMNS)}) ON p.id = g.product_id AND p.name = g.name "
            "AND p.price_cents = g.unit_price_cents AND p.stock >= g.quantity) = :lines"
        )
    ctes = [f"ids AS (SELECT nextval(pg_get_serial_sequence('checkouts', 'id')) AS id{guard})"]
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
    ctes.append(
        f"l AS (INSERT INTO checkout_lines (checkout_id, {', '.join(LINE_COLUMNS)}) "
        f"SELECT c.id, u.* FROM c, unnest({arrays}) AS u({', '.join(LINE_COLUMNS)}))"
    )
    ctes.append(_insert_after("e", EVENTS, "e_", event))
    ctes.append(_insert_after("j", JOBS, "j_", job))
    # fresh: the guard held (always, unguarded); id: the checkout's (None: key taken)
    statement = text(
        f"WITH {', '.join(ctes)} SELECT EXISTS (SELECT 1 FROM ids) AS fresh, "
        "(SELECT id FROM c) AS id"
    )
    return str(statement.compile(dialect=_PG))  # %(name)s: psycopg's (and psycopg2's) style


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
