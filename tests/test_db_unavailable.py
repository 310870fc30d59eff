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
