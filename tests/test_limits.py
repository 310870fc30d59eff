"""Limits on every expensive or abusable route: the synchronous checkout, card retries,
shop forms and cart writes (each an attacker's request that now fails)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from orders.models import Checkout
from tests.factories import checkout_body, make_product
from tests.support import RecordingDispatch

STRONG = {
    # what production demands, so the app starts as production
    "secret_key": "s" * 48,
    "ops_password": "a-long-unique-operator-password",
    "allow_simulated_gateway": True,
}


@pytest.fixture
def make_app(settings) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    """An app with these settings over the test defaults (every limit off unless given)."""
    from app import create_app
    from orders.web.extensions import db

    made: list[Flask] = []

    def make(**overrides: Any) -> Flask:
        app = create_app(
            {
                "TESTING": True,
                "DISPATCH": overrides.pop("DISPATCH", RecordingDispatch()),
                "data_dir": settings.data_dir,
                "database_url": settings.database_url,
                "checkout_rate_limit": "off",
                "shop_rate_limit": "off",
                "payment_retry_rate_limit": "off",
                "sync_checkout_rate_limit": "off",
                **overrides,
            }
        )
        made.append(app)
        return app

    yield make
    for app in made:
        with app.app_context():
            db.engine.dispose()
        streams = app.extensions.get("shop.stream_engine")  # the streams' own pool
        if streams is not None:
            streams.dispose()


def assert_429_problem(response: Any, code: str = "rate_limited") -> None:
    assert response.status_code == 429, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["code"] == code
    assert int(response.headers["Retry-After"]) >= 1


def test_sync_checkout_is_not_served_in_production_unless_enabled(make_app, session):
    make_product(session, sku="SYNC", stock=10)
    production = make_app(environment="production", **STRONG).test_client()
    response = production.post("/api/checkout/sync", json=checkout_body(("SYNC", 1)))
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    assert session.scalar(select(func.count()).select_from(Checkout)) == 0  # nothing ran

    enabled = make_app(environment="production", sync_checkout_enabled=True, **STRONG)
    answered = enabled.test_client().post("/api/checkout/sync", json=checkout_body(("SYNC", 1)))
    assert answered.status_code == 201, answered.get_json()

    development = make_app(environment="development").test_client()
    assert (
        development.post("/api/checkout/sync", json=checkout_body(("SYNC", 1))).status_code == 201
    )


def _clear_of_a_minute_edge(seconds_needed: float = 20.0) -> None:
    """The limits count in fixed windows of a wall-clock minute: a test whose requests
    straddle a minute's edge finds a fresh window. Start where the minute has room."""
    left = 60 - time.time() % 60
    if left < seconds_needed:
        time.sleep(left + 0.1)


def test_sync_checkout_is_rate_limited(make_app, session):
    make_product(session, sku="SYNCRL", stock=10)
    client = make_app(sync_checkout_rate_limit="2/minute").test_client()
    _clear_of_a_minute_edge()  # each sync checkout runs the whole pipeline in the request
    for _ in range(2):
        response = client.post("/api/checkout/sync", json=checkout_body(("SYNCRL", 1)))
        assert response.status_code == 201
    assert_429_problem(client.post("/api/checkout/sync", json=checkout_body(("SYNCRL", 1))))
    other = client.post(
        "/api/checkout/sync",
        json=checkout_body(("SYNCRL", 1)),
        environ_base={"REMOTE_ADDR": "10.1.2.3"},
    )
    assert other.status_code == 201


def test_card_retries_are_capped_per_checkout(make_app, session, drain, dispatched):
    make_product(session, sku="CARDS", stock=10)
    client = make_app(DISPATCH=dispatched, max_payment_attempts=3).test_client()
    placed = client.post(
        "/api/checkout", json=checkout_body(("CARDS", 1), paymentToken="tok_declined")
    )
    job_id = placed.get_json()["data"]["jobId"]
    drain()
    for _ in range(2):  # cards two and three
        retry = client.post("/api/payments", json={"jobId": job_id, "paymentToken": "tok_declined"})
        assert retry.status_code == 202
        drain()
    fourth = client.post("/api/payments", json={"jobId": job_id, "paymentToken": "tok_visa"})
    assert fourth.status_code == 409
    assert fourth.mimetype == "application/problem+json"
    assert fourth.get_json()["code"] == "payment_attempts_exhausted"
    assert dispatched.take() == []  # nothing queued: the gateway never sees the fourth card
    status = client.get(f"/api/orders/status/{job_id}").get_json()
    assert status["status"] == "failed" and status["code"] == "payment_declined"
    assert drain.gateway.ledger()["captures"] == 0


def test_card_retries_are_rate_limited_per_client(make_app):
    client = make_app(payment_retry_rate_limit="2/minute").test_client()
    body = {"jobId": "f" * 32, "paymentToken": "tok_visa"}
    assert [client.post("/api/payments", json=body).status_code for _ in range(2)] == [404, 404]
    assert_429_problem(client.post("/api/payments", json=body))
    other = client.post("/api/payments", json=body, environ_base={"REMOTE_ADDR": "10.1.2.4"})
    assert other.status_code == 404


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


@pytest.mark.parametrize(
    ("path", "form"),
    [
        ("/cart/items", {"sku": "FORM", "quantity": "1"}),
        ("/cart/email", {"email": "ann@example.com"}),  # a recovery email to anyone
        ("/cart/items/FORM", {"quantity": "1"}),
    ],
)
def test_shop_forms_and_cart_writes_are_limited_per_client(make_app, session, path, form):
    make_product(session, sku="FORM", stock=50)
    client = make_app(shop_rate_limit="3/minute").test_client()
    csrf = _csrf(client.get("/").get_data(as_text=True))
    for _ in range(3):
        assert client.post(path, data={"csrf_token": csrf, **form}).status_code == 302
    refused = client.post(path, data={"csrf_token": csrf, **form})
    assert refused.status_code == 429
    assert refused.mimetype == "text/html" and int(refused.headers["Retry-After"]) >= 1
    forged = client.post(path, data={"csrf_token": "forged", **form})
    assert forged.status_code == 429  # counted before anything else, forged or not
    elsewhere = client.post(
        path, data={"csrf_token": csrf, **form}, environ_base={"REMOTE_ADDR": "10.1.2.5"}
    )
    assert elsewhere.status_code == 302


def test_the_shop_checkout_form_counts_as_a_checkout(make_app, session):
    make_product(session, sku="FORMCO", stock=50)
    client = make_app(checkout_rate_limit="1/minute").test_client()

    def check_out() -> Any:
        csrf = _csrf(client.get("/").get_data(as_text=True))
        client.post("/cart/items", data={"csrf_token": csrf, "sku": "FORMCO", "quantity": "1"})
        form = {"csrf_token": csrf, "email": "ann@example.com", "paymentToken": "tok_visa"}
        return client.post("/checkout", data=form)

    assert check_out().status_code == 302  # to the progress page
    assert check_out().status_code == 429
