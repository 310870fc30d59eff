"""No database connection in time: 503 problem+json with Retry-After, not a 500."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from orders.models import Checkout
from tests.factories import checkout_body, make_product

pytestmark = pytest.mark.postgres  # SQLite has no server connections to run out of


@pytest.fixture
def tight_app(postgres_database, tmp_path, dispatched):  # type: ignore[no-untyped-def]
    from app import create_app
    from tests.conftest import truncate_all

    truncate_all(postgres_database)
    app = create_app(
        {
            "TESTING": True,
            "DISPATCH": dispatched,
            "data_dir": tmp_path,
            "database_url": postgres_database,
            "checkout_rate_limit": "off",
            "db_pool_size": 1,
            "db_max_overflow": 0,
            "db_pool_timeout": 0.2,
        }
    )
    yield app
    from orders.web.extensions import db

    with app.app_context():
        db.engine.dispose()


def test_a_request_that_gets_no_connection_in_time_is_503_and_records_nothing(
    tight_app, postgres_database, tmp_path
) -> None:
    from orders.config import Settings
    from orders.db import make_engine, make_session_factory
    from orders.web.extensions import db

    settings = Settings.from_env(
        env={}, overrides={"database_url": postgres_database, "data_dir": tmp_path}
    )
    engine = make_engine(settings)
    with make_session_factory(engine)() as session:
        make_product(session, sku="TEE", stock=5)
    with tight_app.app_context():
        held = db.engine.connect()  # the pool's only connection
        try:
            response = tight_app.test_client().post(
                "/api/checkout", json=checkout_body(("TEE", 1)), headers={"Idempotency-Key": "k"}
            )
        finally:
            held.close()
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["code"] == "database_unavailable"
    assert response.headers["Retry-After"] == "5"
    with make_session_factory(engine)() as session:
        assert session.scalar(select(func.count()).select_from(Checkout)) == 0
    engine.dispose()


def test_a_connection_lost_during_the_checkouts_write_is_503_then_replaced(
    tight_app, postgres_database, tmp_path, caplog
) -> None:
    """The one-statement write runs on the driver's cursor (checkout_at_once.
    execute_on_driver): a dead connection there is still SQLAlchemy's error (503, not
    a 500) and is invalidated, so the next checkout gets a new one. The error logged
    names the statement, not the shopper's email or payment token."""
    from sqlalchemy import create_engine, text

    from orders.environ import database_url_for_sqlalchemy
    from orders.web.extensions import db

    admin = create_engine(database_url_for_sqlalchemy(postgres_database))
    with admin.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO products (sku, name, description, price_cents, stock, sold, "
                "created_at) VALUES ('TEE', 'Tee', '', 1000, 5, 0, CURRENT_TIMESTAMP)"
            )
        )
    client = tight_app.test_client()
    first = client.post("/api/checkout", json=checkout_body(("TEE", 1)))
    assert first.status_code == 202  # the product is remembered: the next skips the read
    with tight_app.app_context():
        with db.engine.connect() as conn:  # the pool's only connection, given back after
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
    with admin.begin() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})

    secret = checkout_body(("TEE", 1), email="private@example.com", paymentToken="tok_secret")
    with caplog.at_level("ERROR"):
        lost = client.post("/api/checkout", json=secret)
    again = client.post("/api/checkout", json=checkout_body(("TEE", 1)))

    assert lost.status_code == 503, lost.get_data(as_text=True)
    assert lost.get_json()["code"] == "database_unavailable"
    assert again.status_code == 202, again.get_data(as_text=True)
    logged = caplog.text
    assert "database unavailable" in logged and "INSERT INTO checkouts" in logged
    assert "private@example.com" not in logged and "tok_secret" not in logged
    assert "parameters hidden" in logged  # not merely cut short by the repr's limit
    with admin.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM checkouts")).scalar_one() == 2
    admin.dispose()
