"""Shared fixtures: real databases, a recording dispatcher, the Flask app.

Backends:
- SQLite always runs.
- PostgreSQL runs when ``TEST_POSTGRES_URL`` is set (``.ci/run`` sets it); Redis when
  ``TEST_REDIS_URL`` is set. When set, an unreachable service is a *failure*, never a
  skip. When unset, those tests are skipped with the reason shown in the summary.

Each test gets a fresh, migrated database: SQLite copies a migrated template file;
PostgreSQL truncates the tables of a database created (and dropped) for this session.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from orders.config import Settings
from orders.db import Base, make_engine, make_session_factory
from orders.environ import database_url_for_sqlalchemy
from tests.support import Drain, RecordingDispatch, migrate_database

# Unset, SHOP_ENV means production; the tests ask for development (the laptop defaults),
# and the tests of production build their own environment mappings.
os.environ["SHOP_ENV"] = "development"

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL")
REDIS_URL = os.environ.get("TEST_REDIS_URL")
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


# per-test timeouts (pytest-timeout) by marker: real processes take longer
TIMEOUTS = {"chaos": 600, "e2e": 300, "browser": 300}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("timeout") is None:
            slow = [seconds for name, seconds in TIMEOUTS.items() if item.get_closest_marker(name)]
            if slow:
                item.add_marker(pytest.mark.timeout(max(slow)))
        if item.get_closest_marker("postgres") and not POSTGRES_URL:
            reason = "set TEST_POSTGRES_URL to run PostgreSQL tests"
            item.add_marker(pytest.mark.skip(reason=reason))
        if item.get_closest_marker("redis") and not REDIS_URL:
            item.add_marker(pytest.mark.skip(reason="set TEST_REDIS_URL to run Redis tests"))


def worker_tag() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "shop.db"
    migrate_database(f"sqlite:///{path}", path.parent)
    return path


@pytest.fixture(scope="session")
def postgres_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database of our own on the PostgreSQL server, migrated once, dropped at the end."""
    assert POSTGRES_URL, "TEST_POSTGRES_URL is not set"
    admin_url = database_url_for_sqlalchemy(POSTGRES_URL)
    name = f"shop_test_{worker_tag()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # enabled but unreachable: fail loudly, never skip
        pytest.fail(f"TEST_POSTGRES_URL is set but PostgreSQL is unreachable: {exc}")
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    migrate_database(url, tmp_path_factory.mktemp("pgmigrate"))
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh migrated database on each backend."""
    if request.param == "sqlite":
        path = tmp_path / "shop.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("postgres_database")
    truncate_all(url)
    return url


def truncate_all(url: str) -> None:
    engine = create_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings.from_env(
        env={"SHOP_ENV": "development"},
        overrides={
            "data_dir": tmp_path,
            "database_url": database_url,
            "sim_gateway_latency_ms": (0, 0),
            "sim_step_latency_ms": (0, 0),
            "retry_delay_seconds": 0.01,
            "SIM_GATEWAY_LEDGER": str(tmp_path / "gateway.db"),
        },
    )


@pytest.fixture
def session(settings: Settings) -> Iterator[Session]:
    """The test's own view of the database (reads never hold the SQLite write lock)."""
    engine = make_engine(settings, immediate=False)
    factory = make_session_factory(engine)
    with factory() as session:
        yield session
    engine.dispose()


@pytest.fixture
def dispatched() -> RecordingDispatch:
    return RecordingDispatch()


@pytest.fixture
def drain(settings: Settings, dispatched: RecordingDispatch) -> Iterator[Drain]:
    """Runs dispatched jobs in-process, in order, with the real runner and a real ledger."""
    engine = make_engine(settings)
    runner = Drain(settings, make_session_factory(engine), dispatched)
    yield runner
    engine.dispose()


@pytest.fixture
def app(settings: Settings, dispatched: RecordingDispatch):  # type: ignore[no-untyped-def]
    from app import create_app

    app = create_app(
        {
            "TESTING": True,
            "DISPATCH": dispatched,
            "data_dir": settings.data_dir,
            "database_url": settings.database_url,
            "checkout_rate_limit": "off",
            "shop_rate_limit": "off",
            "payment_retry_rate_limit": "off",
            "sync_checkout_rate_limit": "off",
        }
    )
    yield app
    from orders.web.extensions import db

    with app.app_context():
        db.engine.dispose()
    streams = app.extensions.get("shop.stream_engine")  # progress streams' own pool
    if streams is not None:
        streams.dispose()


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    return app.test_client()
