"""Database engine, sessions and the declarative base (no Flask here).

SQLite (the embedded default) is shared by the web process and every consumer: see
:func:`configure_sqlite`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import CursorResult, Engine, MetaData, Result, create_engine, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import QueuePool

from orders.config import Settings

log = logging.getLogger(__name__)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    """Naive UTC now: both SQLite and PostgreSQL columns store naive UTC."""
    return datetime.now(UTC).replace(tzinfo=None)


def rowcount(result: Result[Any]) -> int:
    """The rows an UPDATE or DELETE matched. ``Session.execute`` is typed to return a
    ``Result``; for such a statement it is the ``CursorResult`` that counts them."""
    assert isinstance(result, CursorResult)
    return result.rowcount


def engine_of(session: Session) -> Engine:
    """The engine ``session`` is bound to, for work on a connection of its own."""
    bind = session.get_bind()
    assert isinstance(bind, Engine), "the session is bound to one connection, not an engine"
    return bind


def engine_options(
    settings: Settings, *, keep_burst: bool = False, worker: bool = False
) -> dict[str, Any]:
    """Options for ``create_engine`` (also handed to Flask-SQLAlchemy).

    ``worker``: a consumer's pool, ``WORKER_DB_POOL`` connections kept, none burst. Its
    jobs hold a connection only for their short transactions, never while they wait on
    the gateway or the mail server, so a few connections serve hundreds of jobs in
    flight; and the pool bounds how many pipeline transactions compete with the web's
    for PostgreSQL (whose backends are not niced like the consumers).

    ``keep_burst``: keep every connection opened, up to ``DB_POOL_SIZE +
    DB_MAX_OVERFLOW``, instead of closing the burst ones as they are given back. For a
    consumer, whose threads are a fixed set: a burst connection would be reopened at
    once (measured: 8 threads on 4 kept + 4 burst opened ~1,000 PostgreSQL sessions
    draining 1,500 orders, and drained 10-20 % slower than on 8 kept).
    """
    url = settings.sqlalchemy_url
    # a failed statement's error (logged, e.g. by the 503 handler) names the statement
    # but not its values: those are shoppers' emails and payment tokens
    hidden = {"hide_parameters": True}
    if url.startswith("sqlite"):
        return {**hidden, "connect_args": {"timeout": 30, "check_same_thread": False}}
    kept, burst = settings.db_pool_size, settings.db_max_overflow
    if keep_burst:
        kept, burst = kept + burst, 0
    pool: dict[str, Any] = {}
    if worker:
        kept, burst = settings.worker_db_pool, 0
        if settings.consumer_worker_class == "greenlet":
            from orders.pool import StartedJobsFirstPool

            pool["poolclass"] = StartedJobsFirstPool  # a job's later transactions first
    return {
        **hidden,
        **pool,
        "pool_size": kept,
        "max_overflow": burst,
        "pool_timeout": settings.db_pool_timeout,
        "pool_recycle": 1800,
    }


def make_engine(
    settings: Settings, *, immediate: bool = True, keep_burst: bool = False, worker: bool = False
) -> Engine:
    url = settings.sqlalchemy_url
    if url.startswith("sqlite:///"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    options = engine_options(settings, keep_burst=keep_burst, worker=worker)
    engine = create_engine(url, **options)
    ping_when_idle(engine)
    return configure_sqlite(engine, immediate=immediate)


PING_AFTER_IDLE_SECONDS = 2.0


def ping_when_idle(engine: Engine) -> Engine:
    """Check a pooled connection before use only if it sat idle for a while.

    ``pool_pre_ping`` pings on every checkout: a round trip per transaction, and a
    job commits three. A connection back from use a moment ago is alive; one that sat
    idle (a database restart, a firewall's idle timeout) is pinged, and replaced if
    dead (the pool retries on :class:`~sqlalchemy.exc.DisconnectionError`).
    """
    if engine.dialect.name == "sqlite":
        return engine

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        last = record.info.get("checked_in_at")
        if last is not None and time.monotonic() - last < PING_AFTER_IDLE_SECONDS:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError(f"stale pooled connection: {exc}") from exc
        if not alive:
            raise DisconnectionError("stale pooled connection")

    return engine


def warm_pool(engine: Engine) -> int:
    """Open the pool's kept connections now, so the first burst of requests after a
    start does not pay for them. Returns how many it opened; a database that is down is
    not an error here (requests answer 503 as usual)."""
    if engine.dialect.name == "sqlite" or not isinstance(engine.pool, QueuePool):
        return 0
    held = []
    try:
        for _ in range(engine.pool.size()):
            held.append(engine.connect())
    except Exception:
        log.warning("could not warm the database pool", exc_info=True)
    finally:
        for conn in held:
            conn.close()
    log.info("database pool: %d connection(s) opened ahead of the first request", len(held))
    return len(held)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that is always closed; the caller commits."""
    session = factory()
    try:
        yield session
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def configure_sqlite(engine: Engine, *, immediate: bool = True) -> Engine:
    """WAL, busy timeout and foreign keys on every connection; ``BEGIN IMMEDIATE``.

    With ``immediate`` every transaction takes the write lock up front, so two
    writers wait for each other (busy timeout) instead of one failing when it
    upgrades a read lock. An inspector (tests, reports) passes False and runs in
    autocommit: each statement sees the latest commit and holds no lock.
    """
    if engine.dialect.name != "sqlite":
        return engine

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    if immediate:

        @event.listens_for(engine, "begin")
        def _on_begin(connection: Any) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
