"""Hostile input: per-client checkout rate limit, request size limit, security headers."""

from __future__ import annotations

import uuid

import pytest

from orders.environ import ConfigError
from orders.infra.ratelimit import FixedWindowLimiter, Limit, parse_limits
from tests.conftest import REDIS_URL
from tests.factories import checkout_body, make_product
from tests.support import RecordingDispatch


def test_parse_limits():
    assert parse_limits("20/second;300/minute") == [Limit(20, 1), Limit(300, 60)]
    assert parse_limits("5 per 10 seconds") == [Limit(5, 10)]
    assert parse_limits("off") == []
    with pytest.raises(ConfigError):
        parse_limits("lots/minute")


def test_fixed_window_counts_per_client_and_window():
    limiter = FixedWindowLimiter([Limit(2, 60)])
    assert limiter.hit("a", now=120.0) is None
    assert limiter.hit("a", now=130.0) is None
    assert limiter.hit("a", now=150.0) == 30  # the window ends at 180
    assert limiter.hit("b", now=150.0) is None  # another client
    assert limiter.hit("a", now=180.0) is None  # a new window


@pytest.mark.redis
def test_redis_windows_are_shared_by_every_web_worker():
    prefix = f"t{uuid.uuid4().hex[:8]}"
    one = FixedWindowLimiter([Limit(3, 60)], REDIS_URL, prefix)
    two = FixedWindowLimiter([Limit(3, 60)], REDIS_URL, prefix)
    assert [one.hit("c", 60.0), two.hit("c", 61.0), one.hit("c", 62.0)] == [None] * 3
    assert two.hit("c", 63.0) == 57
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    client.delete(*client.keys(f"{prefix}:*"))
    client.close()


@pytest.mark.redis
def test_hits_at_once_share_round_trips_and_each_counts_once():
    import threading

    import redis

    prefix = f"t{uuid.uuid4().hex[:8]}"
    limiter = FixedWindowLimiter([Limit(30, 60), Limit(1000, 3600)], REDIS_URL, prefix)
    start = threading.Barrier(40)
    waits: list[int | None] = []

    def shopper(n: int) -> None:
        start.wait()
        waits.append(limiter.hit("crowd" if n % 2 else "other", 7200.0))

    threads = [threading.Thread(target=shopper, args=(n,)) for n in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert waits.count(None) == 40  # 20 each, under both limits
    assert limiter.hit("crowd", 7201.0) is None  # the 21st of "crowd"
    client = redis.Redis.from_url(REDIS_URL)
    try:
        assert int(client.get(f"{prefix}:ratelimit:checkout:crowd:60:120") or 0) == 21
        assert int(client.get(f"{prefix}:ratelimit:checkout:other:3600:2") or 0) == 20
        assert limiter._hits.items == 41 and limiter._hits.batches < 41  # shared pipelines
    finally:
        client.delete(*client.keys(f"{prefix}:*"))
        client.close()


@pytest.fixture
def limited_client(settings):
    from app import create_app
    from orders.web.extensions import db

    app = create_app(
        {
            "TESTING": True,
            "DISPATCH": RecordingDispatch(),
            "data_dir": settings.data_dir,
            "database_url": settings.database_url,
            "checkout_rate_limit": "3/minute",
        }
    )
    yield app.test_client()
    with app.app_context():
        db.engine.dispose()


def test_checkout_past_the_limit_is_429_problem_with_retry_after(limited_client, session):
    make_product(session, sku="RL", stock=50)
    for _ in range(3):
        response = limited_client.post("/api/checkout", json=checkout_body(("RL", 1)))
        assert response.status_code == 202
    response = limited_client.post("/api/checkout", json=checkout_body(("RL", 1)))
    assert response.status_code == 429
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["code"] == "rate_limited"
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    other = limited_client.post(
        "/api/checkout",
        json=checkout_body(("RL", 1)),
        environ_base={"REMOTE_ADDR": "10.9.8.7"},
    )
    assert other.status_code == 202


def test_rate_limit_off_lets_everything_through(client, session):
    make_product(session, sku="NOLIMIT", stock=50)
    for _ in range(25):
        assert client.post("/api/checkout", json=checkout_body(("NOLIMIT", 1))).status_code == 202


def test_a_body_over_the_size_limit_is_413_problem(client, settings):
    big = b'{"email": "' + b"a" * (settings.max_body_bytes + 10) + b'"}'
    response = client.post("/api/checkout", data=big, content_type="application/json")
    assert response.status_code == 413
    assert response.mimetype == "application/problem+json"


@pytest.mark.parametrize("path", ["/api/products", "/api/orders/status/nope", "/no-such-page"])
def test_security_headers_on_every_response(client, path):
    response = client.get(path)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_pages_get_a_csp_that_allows_same_origin_scripts(client):
    response = client.get("/no-such-page", headers={"Accept": "text/html"})
    assert response.mimetype == "text/html"
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "'unsafe-eval'" not in csp


def test_nul_bytes_are_refused_not_sent_to_the_database(client, session):
    # found by the schemathesis fuzzer: PostgreSQL raised on NUL, and the API answered 500
    for path in ("/api/orders/status/1%00x", "/api/orders/ORD-%00"):
        response = client.get(path)
        assert response.status_code == 404 and response.mimetype == "application/problem+json"
    make_product(session, sku="NUL", stock=5)
    for field in ("discountCode", "customerId", "cartId"):
        body = checkout_body(("NUL", 1), **{field: "a\x00b"})
        if field == "cartId":
            del body["items"]
        response = client.post("/api/checkout", json=body)
        assert response.status_code == 422, (field, response.get_json())
        assert response.get_json()["errors"][0]["field"] == field
