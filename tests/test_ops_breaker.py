"""The breaker state the dashboard reads from Redis (the key contract) and its reset."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from orders.ops.breaker_state import breaker_key, breaker_state
from tests.conftest import REDIS_URL
from tests.ops_support import login, token
from tests.support import RecordingDispatch

pytestmark = pytest.mark.redis


@pytest.fixture
def redis_app(settings) -> Iterator:  # type: ignore[no-untyped-def]
    import redis

    from app import create_app
    from orders.web.extensions import db

    prefix = f"t{uuid.uuid4().hex[:10]}"
    app = create_app(
        {
            "TESTING": True,
            "DISPATCH": RecordingDispatch(),
            "data_dir": settings.data_dir,
            "database_url": settings.database_url,
            "redis_url": REDIS_URL,
            "queue_prefix": prefix,
        }
    )
    yield app
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(f"{prefix}:*"))
    if keys:
        client.delete(*keys)
    client.close()
    with app.app_context():
        db.engine.dispose()


def test_the_dashboard_shows_the_open_breaker_and_resets_it(redis_app):
    import redis

    config = redis_app.extensions["shop.settings"]
    key = breaker_key(config)
    assert key == f"{config.queue_prefix}:payment-gateway:pybreaker:state"
    store = redis.Redis.from_url(REDIS_URL)
    assert breaker_state(config) == "unknown"  # nothing written yet
    store.set(key, "open")
    store.set(breaker_key(config, "fail_counter"), 5)
    store.set(breaker_key(config, "opened_at"), 1)
    assert breaker_state(config) == "open"

    client = redis_app.test_client()
    assert login(client).status_code == 302
    assert 'data-state="open"' in client.get("/ops/").get_data(as_text=True)
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'shop_circuit_breaker_state{state="open"} 1.0' in metrics

    response = client.post("/ops/breaker/reset", data={"csrf_token": token(client)})
    assert response.status_code == 302
    assert store.get(key) == b"closed" and store.get(breaker_key(config, "fail_counter")) == b"0"
    assert store.get(breaker_key(config, "opened_at")) is None
    assert 'data-state="closed"' in client.get("/ops/").get_data(as_text=True)
    assert "reset_breaker" in client.get("/ops/audit").get_data(as_text=True)
    store.close()
