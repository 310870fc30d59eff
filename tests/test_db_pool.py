"""Pooled PostgreSQL connections are pinged only after sitting idle (orders.db.ping_when_idle)."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from orders import db as orders_db
from orders.config import database_url_for_sqlalchemy

pytestmark = pytest.mark.postgres


def _engine(url: str):  # type: ignore[no-untyped-def]
    engine = create_engine(database_url_for_sqlalchemy(url), pool_size=1, max_overflow=0)
    return orders_db.ping_when_idle(engine)


def _kill_pooled_backend(engine, admin) -> None:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
    with admin.connect() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})


@pytest.fixture
def admin(postgres_database: str):  # type: ignore[no-untyped-def]
    engine = create_engine(database_url_for_sqlalchemy(postgres_database))
    yield engine
    engine.dispose()


def test_an_idle_dead_connection_is_replaced_before_use(
    postgres_database: str, admin, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(orders_db, "PING_AFTER_IDLE_SECONDS", 0.0)  # every checkout is "idle"
    engine = _engine(postgres_database)
    _kill_pooled_backend(engine, admin)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT 1")).scalar() == 1
    engine.dispose()


def test_a_connection_used_a_moment_ago_is_not_pinged(
    postgres_database: str, admin, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(orders_db, "PING_AFTER_IDLE_SECONDS", 3600.0)
    engine = _engine(postgres_database)
    _kill_pooled_backend(engine, admin)
    # no ping: the first statement meets the dead connection (and the pool drops it)
    with pytest.raises(OperationalError), engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT 1")).scalar() == 1
    engine.dispose()
