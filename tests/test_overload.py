"""OVERLOAD_POLICY: accept, shed or sync when the broker is down or the queue too deep."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from orders.infra.broker import BrokerProbe
from orders.infra.gateway import SimulatedGateway
from orders.models import Checkout, Job, Order
from tests.factories import checkout_body, make_product
from tests.support import RecordingDispatch


@pytest.fixture
def make_client(settings):
    from app import create_app
    from orders.web.extensions import db

    apps = []

    def build(policy: str, *, broker_up: bool = True, depth: int = 10_000, dispatch=None):
        app = create_app(
            {
                "TESTING": True,
                "DISPATCH": dispatch or RecordingDispatch(fail=not broker_up),
                "BROKER_UP": lambda: broker_up,
                "data_dir": settings.data_dir,
                "database_url": settings.database_url,
                "checkout_rate_limit": "off",
                "overload_policy": policy,
                "overload_queue_depth": depth,
                "sim_gateway_latency_ms": (0, 0),
                "sim_step_latency_ms": (0, 0),
                "retry_delay_seconds": 0.01,
                "SIM_GATEWAY_LEDGER": str(settings.data_dir / "gateway.db"),
            }
        )
        apps.append(app)
        return app.test_client()

    yield build
    for app in apps:
        with app.app_context():
            db.engine.dispose()


def count(session, model) -> int:
    session.expire_all()
    value = session.scalar(select(func.count()).select_from(model))
    session.commit()
    return int(value)


def test_accept_records_and_answers_202_with_the_broker_down(make_client, session):
    make_product(session, sku="ACC", stock=5)
    client = make_client("accept", broker_up=False)
    response = client.post("/api/checkout", json=checkout_body(("ACC", 1)))
    assert response.status_code == 202
    job = session.scalars(select(Job)).one()
    assert job.enqueued_at is None  # the sweeper sends it once the broker is back


def test_shed_answers_503_with_retry_after_when_the_broker_is_down(make_client, session):
    make_product(session, sku="SHED", stock=5)
    client = make_client("shed", broker_up=False)
    response = client.post("/api/checkout", json=checkout_body(("SHED", 1)))
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    assert response.headers["Retry-After"] == "5"
    body = response.get_json()
    assert body["code"] == "overloaded" and "unreachable" in body["detail"]
    assert count(session, Checkout) == 0


def test_shed_answers_503_when_too_many_jobs_wait(make_client, session):
    make_product(session, sku="DEEP", stock=50)
    client = make_client("shed", depth=2)
    for _ in range(3):  # 1, 2, 3 waiting jobs: the limit is "more than 2"
        assert client.post("/api/checkout", json=checkout_body(("DEEP", 1))).status_code == 202
    response = client.post("/api/checkout", json=checkout_body(("DEEP", 1)))
    assert response.status_code == 503
    assert "3 jobs are waiting (limit 2)" in response.get_json()["detail"]
    assert count(session, Checkout) == 3


def test_shed_accepts_when_healthy(make_client, session):
    make_product(session, sku="OK", stock=5)
    client = make_client("shed")
    assert client.post("/api/checkout", json=checkout_body(("OK", 1))).status_code == 202


def test_sync_processes_inline_and_answers_the_final_status(make_client, session, settings):
    make_product(session, sku="SYNC", stock=5, price_cents=1500)
    dispatched = RecordingDispatch()
    client = make_client("sync", broker_up=False, dispatch=dispatched)
    response = client.post("/api/checkout", json=checkout_body(("SYNC", 2)))
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["message"] == "Order processed"
    assert body["data"]["status"] == "completed"
    assert body["data"]["result"]["order"]["totalCents"] == 3000
    assert count(session, Order) == 1
    assert dispatched.types() == ["send-order-confirmation"]  # the email is left to the queue
    ledger = SimulatedGateway(settings.data_dir / "gateway.db").ledger()
    assert ledger["captures"] == 1 and ledger["captured_cents"] == 3000


def test_sync_reports_a_failed_checkout(make_client, session):
    make_product(session, sku="SYNCD", stock=5)
    client = make_client("sync", broker_up=False, dispatch=RecordingDispatch())
    response = client.post(
        "/api/checkout", json=checkout_body(("SYNCD", 1), paymentToken="tok_declined")
    )
    assert response.status_code == 200
    result = response.get_json()["data"]["result"]
    assert result["status"] == "failed" and result["code"] == "payment_declined"


def test_sync_queues_normally_when_healthy(make_client, session):
    make_product(session, sku="SYNCQ", stock=5)
    client = make_client("sync")
    assert client.post("/api/checkout", json=checkout_body(("SYNCQ", 1))).status_code == 202


def test_the_broker_probe_says_down_quickly_for_a_refused_port():
    from tests.stack import free_port

    probe = BrokerProbe(f"redis://127.0.0.1:{free_port()}/0")
    assert probe() is False
    assert BrokerProbe(None)() is True
