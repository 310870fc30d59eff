"""Nothing leaks: what an order number, a checkout id, the probes and /metrics tell a
stranger (tests/e2e/test_headers_e2e.py asks the same of real gunicorn)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from orders.models import Order, Payment
from tests.factories import checkout_body, make_product
from tests.support import RecordingDispatch

PERSONAL = ("email", "items", "payments", "timeline", "jobId")


def place(client: Any, *items: tuple[str, int], **extra: Any) -> str:
    response = client.post("/api/checkout", json=checkout_body(*items, **extra))
    assert response.status_code == 202, response.get_json()
    return str(response.get_json()["data"]["jobId"])


def order_number(session: Any) -> str:
    session.expire_all()
    return str(session.scalar(select(Order.order_number)))


def test_the_order_number_alone_shows_no_personal_data(client, session, drain):
    make_product(session, sku="PII", stock=5)
    job_id = place(client, ("PII", 1), email="ann.private@example.com")
    drain()
    number = order_number(session)

    stranger = client.get(f"/api/orders/{number}")
    assert stranger.status_code == 200
    body = stranger.get_json()
    assert body["view"] == "public" and body["orderNumber"] == number
    assert not set(PERSONAL) & set(body)
    assert "ann.private" not in stranger.get_data(as_text=True)
    assert stranger.headers["Cache-Control"] == "no-store"

    for proof in ({"headers": {"X-Job-Id": job_id}}, {"query_string": {"jobId": job_id}}):
        shopper = client.get(f"/api/orders/{number}", **proof).get_json()
        assert shopper["view"] == "full" and shopper["email"] == "ann.private@example.com"
    wrong = client.get(f"/api/orders/{number}", headers={"X-Job-Id": "0" * 32}).get_json()
    assert wrong["view"] == "public"


def test_the_session_a_checkout_was_placed_from_sees_the_full_view(client, session, drain):
    make_product(session, sku="SESS", stock=5)
    response = client.post(
        "/api/checkout",
        json=checkout_body(("SESS", 1)),
        headers={"X-Session-Id": "app-session-7c1f0e9a2b"},
    )
    assert response.status_code == 202
    drain()
    number = order_number(session)
    mine = client.get(f"/api/orders/{number}", headers={"X-Session-Id": "app-session-7c1f0e9a2b"})
    assert mine.get_json()["view"] == "full"
    theirs = client.get(f"/api/orders/{number}", headers={"X-Session-Id": "another-session"})
    assert theirs.get_json()["view"] == "public"


def test_the_shoppers_timeline_holds_no_references_keys_or_errors(client, session, drain):
    """Declined, then flaky (a retried gateway error), then paid: the operators' timeline
    quotes gateway references, keys and errors; the shopper's holds none of them."""
    make_product(session, sku="TL", stock=5)
    job_id = place(client, ("TL", 1), paymentToken="tok_declined")
    drain()
    retry = client.post("/api/payments", json={"jobId": job_id, "paymentToken": "tok_flaky"})
    assert retry.status_code == 202
    drain()
    number = order_number(session)
    text = client.get(f"/api/orders/{number}", headers={"X-Job-Id": job_id}).get_data(as_text=True)
    detail = json.loads(text)
    assert detail["view"] == "full"
    assert [p["status"] for p in detail["payments"]] == ["declined", "captured"]
    secrets = [p.gateway_ref for p in session.scalars(select(Payment)) if p.gateway_ref]
    secrets += [p.idempotency_key for p in session.scalars(select(Payment))]
    assert secrets and not [s for s in secrets if s in text]
    assert not re.search(r"ch_|re_|upstream timeout|attempt \d|gatewayRef|idempotencyKey", text)
    assert {e["type"] for e in detail["timeline"]} <= {"progress", "completed", "failed"}


def test_a_broken_checkout_tells_the_shopper_no_exception_text(client, session, drain):
    make_product(session, sku="BROKEN", stock=5)
    job_id = place(client, ("BROKEN", 1), paymentToken="tok_error")
    drain()
    from orders.models import Checkout

    session.expire_all()
    stored = session.scalar(select(Checkout.error_message))
    assert "upstream timeout" in stored  # the operators' record keeps the cause
    status = client.get(f"/api/orders/status/{job_id}").get_json()
    assert status["status"] == "failed" and status["code"] == "payment_unavailable"
    assert "upstream" not in status["error"] and "process-payment" not in status["error"]
    page = client.get(f"/checkout/{job_id}/done").get_data(as_text=True)
    assert "upstream" not in page and status["error"] in page
    with client.get(f"/api/orders/status/{job_id}/stream", buffered=False) as stream:
        assert "upstream" not in stream.get_data(as_text=True)


def _buy_through_the_pages(client: Any, sku: str) -> str:
    html = client.get("/").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', html)[1]  # type: ignore[index]
    client.post("/cart/items", data={"csrf_token": csrf, "sku": sku, "quantity": "1"})
    data = {"csrf_token": csrf, "email": "page.shopper@example.com", "paymentToken": "tok_visa"}
    response = client.post("/checkout", data=data)
    assert response.status_code == 302
    return str(response.headers["Location"].rsplit("/", 1)[-1])


def test_the_confirmation_page_names_the_email_only_to_its_shopper(app, session, drain):
    make_product(session, sku="PAGE", stock=5)
    shopper = app.test_client()
    job_id = _buy_through_the_pages(shopper, "PAGE")
    drain()
    mine = shopper.get(f"/checkout/{job_id}/done")
    assert "page.shopper@example.com" in mine.get_data(as_text=True)
    assert mine.headers["Cache-Control"] == "no-store"
    stranger = app.test_client().get(f"/checkout/{job_id}/done")  # the link, shared
    assert stranger.status_code == 200
    html = stranger.get_data(as_text=True)
    assert "page.shopper" not in html and order_number(session) in html
    # and the same browser session sees the full order through the API
    assert shopper.get(f"/api/orders/{order_number(session)}").get_json()["view"] == "full"


@pytest.fixture
def make_app(settings) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    from app import create_app
    from orders.web.extensions import db

    made: list[Flask] = []

    def make(**overrides: Any) -> Flask:
        app = create_app(
            {
                "TESTING": True,
                "DISPATCH": RecordingDispatch(),
                "data_dir": settings.data_dir,
                "database_url": settings.database_url,
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


PRODUCTION = {
    "environment": "production",
    "secret_key": "s" * 48,
    "ops_password": "a-long-unique-operator-password",
    "allow_simulated_gateway": True,
}


def test_metrics_need_the_bearer_token(make_app):
    guarded = make_app(metrics_token="scrape-token-0123456789").test_client()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "scrape-token"}):
        refused = guarded.get("/metrics", headers=headers)
        assert refused.status_code == 401
        assert refused.mimetype == "application/problem+json"
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
        assert "shop_" not in refused.get_data(as_text=True)
    allowed = guarded.get("/metrics", headers={"Authorization": "Bearer scrape-token-0123456789"})
    assert allowed.status_code == 200 and "shop_queue_jobs" in allowed.get_data(as_text=True)

    unset = make_app(**PRODUCTION).test_client().get("/metrics")
    assert unset.status_code == 404  # production without a token: not served
    development = make_app(environment="development").test_client().get("/metrics")
    assert development.status_code == 200


def test_public_probes_name_no_host_pid_or_error(make_app):
    from orders.ops.heartbeats import WorkerIdentity, beat
    from orders.web.extensions import db
    from tests.stack import free_port

    app = make_app(redis_url=f"redis://127.0.0.1:{free_port()}/0")  # the broker is down
    with app.app_context():
        beat(db.session, WorkerIdentity("worker-host-7.internal", 424242, "payments", 3))
        db.session.commit()
    client = app.test_client()
    ready = client.get("/readyz")
    assert ready.status_code == 503
    queues = client.get("/api/health/queues")
    for response in (client.get("/healthz"), ready, queues):
        text = response.get_data(as_text=True)
        assert "worker-host-7" not in text and "424242" not in text
        assert "Error" not in text and "127.0.0.1" not in text and "refused" not in text
    assert ready.get_json()["checks"] == {"database": "ok", "broker": "down"}
    assert queues.get_json()["workers"]["payments"] == {"alive": 1, "dead": 0, "concurrency": 3}
