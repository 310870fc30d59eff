"""POST /api/checkout, GET status and order detail, over the Flask test client."""

import threading

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from orders.models import Checkout, CheckoutEvent, IdempotencyKey, Job, Product
from tests.factories import checkout_body, make_discount, make_product

TABLES_WRITTEN_BY_CHECKOUT = (Checkout, CheckoutEvent, Job, IdempotencyKey)


def counts(session):
    session.expire_all()
    return {
        m.__tablename__: session.scalar(select(func.count()).select_from(m))
        for m in TABLES_WRITTEN_BY_CHECKOUT
    }


def post(client, body, **headers):
    return client.post("/api/checkout", json=body, headers=headers)


def test_checkout_answers_202_with_the_seed_shape(client, session, dispatched):
    make_product(session, sku="TEE", price_cents=2500, stock=5)
    response = post(client, checkout_body(("TEE", 2), total=1))
    assert response.status_code == 202
    data = response.get_json()["data"]
    job_id = data["jobId"]
    assert response.get_json()["success"] is True
    assert response.get_json()["message"] == "Order processing started"
    assert data["status"] == "queued"
    assert data["trackingUrl"] == f"/api/orders/status/{job_id}"
    assert data["streamUrl"] == f"/api/orders/status/{job_id}/stream"
    assert response.headers["Location"] == data["trackingUrl"]
    assert response.headers["Retry-After"] == "1"
    checkout = session.scalar(select(Checkout).where(Checkout.public_id == job_id))
    assert checkout.total_cents == 5000  # the client's "total" is ignored
    assert dispatched.types() == ["reserve-stock"]
    status = client.get(data["trackingUrl"]).get_json()
    assert status == {
        "status": "queued",
        "progress": 0,
        "step": "queued",
        "message": "Order received, waiting for a worker",
    }


def test_discount_is_applied_by_the_server(client, session):
    make_product(session, sku="TEE", price_cents=2500, stock=5)
    make_discount(session, "SAVE10", 10)
    response = post(client, checkout_body(("TEE", 3), discountCode="save10"))
    assert response.status_code == 202
    checkout = session.scalar(select(Checkout))
    assert (checkout.subtotal_cents, checkout.discount_cents, checkout.total_cents) == (
        7500,
        750,
        6750,
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (checkout_body(("NOPE", 1)), "items[0].sku"),
        (checkout_body(("TEE", 1), ("TEE2", 9)), "items[1].quantity"),
        (checkout_body(("TEE", 0)), "items[0].quantity"),
        (checkout_body(("TEE", 1), email="not-an-email"), "email"),
        (checkout_body(("TEE", 1), discountCode="BOGUS"), "discountCode"),
        (checkout_body(("TEE", 1), discountCode="OLD"), "discountCode"),
        (checkout_body(("TEE", 1), paymentToken="tok visa"), "paymentToken"),
        ({"email": "a@b.co", "cartId": "missing"}, "cartId"),
    ],
)
def test_bad_input_is_422_problem_json_and_leaves_nothing(client, session, body, field):
    from datetime import datetime

    make_product(session, sku="TEE", stock=5)
    make_product(session, sku="TEE2", stock=3)
    make_discount(session, "OLD", 10, expires_at=datetime(2020, 1, 1))
    before = counts(session)
    response = post(client, body, **{"Idempotency-Key": "k-bad"})
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert problem["status"] == 422 and problem["title"] and problem["type"]
    assert field in [e["field"] for e in problem["errors"]]
    assert counts(session) == before  # no half-written checkout, key released


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({"data": "{not json", "content_type": "application/json"}, 400),
        ({"data": "email=a", "content_type": "application/x-www-form-urlencoded"}, 415),
        ({"data": "x" * 70_000, "content_type": "application/json"}, 413),
        ({"data": "[1, 2]", "content_type": "application/json"}, 422),
        ({"data": "null", "content_type": "application/json"}, 422),
        ({"data": b"\xff\xfe", "content_type": "application/json"}, 400),
    ],
)
def test_malformed_requests_get_problem_json(client, session, kwargs, status):
    before = counts(session)
    response = client.post("/api/checkout", **kwargs)
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["status"] == status
    assert counts(session) == before


def test_idempotency_key_replays_the_same_job(client, session, dispatched):
    make_product(session, sku="TEE", stock=5)
    body = checkout_body(("TEE", 1))
    first = post(client, body, **{"Idempotency-Key": "abc-1"})
    again = post(client, body, **{"Idempotency-Key": "abc-1"})
    assert first.status_code == again.status_code == 202
    assert first.get_json()["data"]["jobId"] == again.get_json()["data"]["jobId"]
    assert counts(session)["checkouts"] == 1
    assert len(dispatched.refs) == 1


def test_idempotency_key_with_another_body_is_422(client, session):
    make_product(session, sku="TEE", stock=5)
    assert post(client, checkout_body(("TEE", 1)), **{"Idempotency-Key": "k"}).status_code == 202
    response = post(client, checkout_body(("TEE", 2)), **{"Idempotency-Key": "k"})
    assert response.status_code == 422
    assert response.get_json()["code"] == "idempotency_key_reused"
    assert counts(session)["checkouts"] == 1


def test_idempotency_key_still_being_recorded_is_409(client, session):
    make_product(session, sku="TEE", stock=5)
    body = checkout_body(("TEE", 1))
    from orders.services.checkout import request_hash

    session.add(IdempotencyKey(key="busy", request_hash=request_hash(body)))
    session.commit()
    response = post(client, body, **{"Idempotency-Key": "busy"})
    assert response.status_code == 409
    assert response.mimetype == "application/problem+json"


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\there", "ключ"])
def test_bad_idempotency_keys_are_rejected(client, session, key):
    make_product(session, sku="TEE", stock=5)
    response = post(client, checkout_body(("TEE", 1)), **{"Idempotency-Key": key})
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"] == "Idempotency-Key"


def test_concurrent_duplicates_make_one_checkout(app, session, settings):
    """20 threads, one key: one checkout; every request gets its 202 (the others wait
    for the first on the key's unique index, then replay it), never 409 or 5xx."""
    make_product(session, sku="TEE", stock=50)
    body = checkout_body(("TEE", 1))
    results: list[tuple[int, str | None]] = []
    barrier = threading.Barrier(20)

    def buy() -> None:
        client = app.test_client()
        barrier.wait()
        response = client.post("/api/checkout", json=body, headers={"Idempotency-Key": "same"})
        data = response.get_json().get("data", {}) if response.status_code == 202 else {}
        results.append((response.status_code, data.get("jobId")))

    threads = [threading.Thread(target=buy) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [status for status, _ in results] == [202] * 20
    assert len({job for _, job in results}) == 1
    assert counts(session)["checkouts"] == 1


class HeldCommit(Session):
    """The first request, stopped between its last statement and its commit."""

    def __init__(self, *args, dies: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.dies = dies
        self.at_commit = threading.Event()
        self.go = threading.Event()

    def commit(self) -> None:
        self.at_commit.set()
        assert self.go.wait(30)
        if self.dies:
            raise RuntimeError("the first request died before its commit")
        super().commit()


@pytest.mark.parametrize("dies", [False, True], ids=["first-commits", "first-dies"])
def test_a_duplicate_waits_for_the_request_in_flight(app, session, settings, dies):
    """Same key while the first request is recording: the duplicate waits for it, then
    answers with its checkout (or, if it died, records its own): one checkout either way."""
    from orders.db import make_engine
    from orders.services.checkout import place_checkout

    make_product(session, sku="TEE", stock=5)
    body = checkout_body(("TEE", 1))
    engine = make_engine(settings)
    first_session = HeldCommit(engine, dies=dies)
    first: dict = {}

    def first_request() -> None:
        try:
            first["placed"] = place_checkout(
                first_session, settings, body, None, idempotency_key="inflight"
            )
        except RuntimeError as exc:
            first["error"] = exc

    def duplicate() -> None:
        response = app.test_client().post(
            "/api/checkout", json=body, headers={"Idempotency-Key": "inflight"}
        )
        first["duplicate"] = response

    one = threading.Thread(target=first_request)
    one.start()
    assert first_session.at_commit.wait(30)
    two = threading.Thread(target=duplicate)
    two.start()
    two.join(1.0)
    assert two.is_alive(), "the duplicate answered while the first was still in flight"
    first_session.go.set()
    one.join(30)
    two.join(30)
    first_session.close()
    engine.dispose()
    response = first["duplicate"]
    assert response.status_code == 202, response.get_data(as_text=True)
    job_id = response.get_json()["data"]["jobId"]
    if dies:
        assert "error" in first
    else:
        assert job_id == first["placed"].public_id
    assert counts(session)["checkouts"] == 1
    assert session.scalar(select(Checkout.public_id)) == job_id


def test_unknown_job_is_404_problem(client):
    response = client.get("/api/orders/status/doesnotexist")
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["title"] == "Job not found"


def test_unknown_order_is_404_problem(client):
    response = client.get("/api/orders/ORD-NOPE")
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"


def test_unknown_route_and_method_are_problem_json(client):
    assert client.get("/api/nope").mimetype == "application/problem+json"
    response = client.get("/api/checkout")
    assert response.status_code == 405
    assert response.mimetype == "application/problem+json"


def test_products_lists_the_catalogue(client, session):
    make_product(session, sku="TEE", price_cents=2500, stock=5, name="Tee")
    assert client.get("/api/products").get_json() == {
        "products": [{"sku": "TEE", "name": "Tee", "priceCents": 2500, "stock": 5}]
    }


def test_validation_does_not_hold_stock(client, session):
    product = make_product(session, sku="TEE", stock=5)
    post(client, checkout_body(("TEE", 2)))
    session.expire_all()
    assert session.get(Product, product.id).stock == 5  # stock is held by the worker, not the API
