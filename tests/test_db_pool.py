"""Pooled PostgreSQL connections are pinged only after sitting idle (orders.db.ping_when_idle)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from orders import db as orders_db
from orders.environ import database_url_for_sqlalchemy

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


def test_warming_opens_the_kept_connections_and_no_burst_ones(postgres_database: str, admin):  # type: ignore[no-untyped-def]
    engine = create_engine(
        database_url_for_sqlalchemy(postgres_database), pool_size=3, max_overflow=2
    )
    assert orders_db.warm_pool(engine) == 3
    assert engine.pool.checkedin() == 3
    with admin.connect() as conn:
        warmed_by = conn.execute(text("SELECT clock_timestamp()")).scalar()
    held = [engine.connect() for _ in range(3)]  # a burst of three finds them open
    started = [
        conn.execute(
            text("SELECT backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()")
        ).scalar()
        for conn in held
    ]
    assert all(at < warmed_by for at in started)
    for conn in held:
        conn.close()
    engine.dispose()


def test_warming_a_database_that_is_down_is_not_an_error() -> None:
    engine = create_engine("postgresql+psycopg://postgres@127.0.0.1:1/none", pool_size=2)
    assert orders_db.warm_pool(engine) == 0
    engine.dispose()


def test_a_gunicorn_worker_warms_the_shop_pool_and_skips_other_apps(  # type: ignore[no-untyped-def]
    postgres_database: str, tmp_path, monkeypatch: pytest.MonkeyPatch
):
    import runpy
    from types import SimpleNamespace

    from flask import Flask

    from app import create_app
    from orders.web.extensions import db

    conf = runpy.run_path(str(Path(__file__).resolve().parents[1] / "gunicorn.conf.py"))
    monkeypatch.setenv("GC_FREEZE", "0")
    shop = create_app({"data_dir": tmp_path, "database_url": postgres_database, "db_pool_size": 2})
    conf["post_worker_init"](SimpleNamespace(wsgi=shop))
    with shop.app_context():
        assert db.engine.pool.checkedin() == 2
        db.engine.dispose()
    conf["post_worker_init"](SimpleNamespace(wsgi=Flask("bare")))  # no database: nothing to do


def test_a_consumer_keeps_its_burst_connections(postgres_database: str, tmp_path):  # type: ignore[no-untyped-def]
    """Closed on return, a burst connection is reopened by the next job (a PostgreSQL
    backend forked per burst); a consumer's engine keeps them, within the same total."""
    from orders.config import Settings

    settings = Settings.from_env(
        env={},
        overrides={
            "data_dir": tmp_path,
            "database_url": postgres_database,
            "db_pool_size": 1,
            "db_max_overflow": 2,
        },
    )

    def three_at_once(engine) -> set[int]:  # type: ignore[no-untyped-def]
        """The backends that served three connections held at once."""
        held = [engine.connect() for _ in range(3)]
        pids = {conn.execute(text("SELECT pg_backend_pid()")).scalar() for conn in held}
        for conn in held:
            conn.close()
        return pids  # type: ignore[return-value]

    web = orders_db.make_engine(settings)
    assert (web.pool.size(), web.pool._max_overflow) == (1, 2)  # type: ignore[attr-defined]
    first = three_at_once(web)
    assert len(three_at_once(web) - first) == 2  # the burst ones were closed and reopened
    web.dispose()

    consumer = orders_db.make_engine(settings, keep_burst=True)
    assert (consumer.pool.size(), consumer.pool._max_overflow) == (3, 0)  # type: ignore[attr-defined]
    first = three_at_once(consumer)
    assert three_at_once(consumer) == first
    consumer.dispose()


def test_the_consumers_engine_keeps_its_worker_db_pool(postgres_database: str, tmp_path):  # type: ignore[no-untyped-def]
    """tasks.py (what the consumer loads) keeps ``WORKER_DB_POOL`` connections, none
    burst: sized for its short transactions, not for its hundreds of jobs in flight
    (the web's DB_POOL_SIZE / DB_MAX_OVERFLOW do not apply)."""
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "DATABASE_URL": postgres_database,
        "DB_POOL_SIZE": "1",
        "DB_MAX_OVERFLOW": "2",
        "WORKER_DB_POOL": "5",
        "DATA_DIR": str(tmp_path),
    }
    env.pop("REDIS_URL", None)
    probe = (
        "import tasks; p = tasks.runtime.sessions.kw['bind'].pool; print(p.size(), p._max_overflow)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.split() == ["5", "0"]
