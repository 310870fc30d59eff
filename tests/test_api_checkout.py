"""POST /api/checkout, GET status and order detail, over the Flask test client."""

import pytest
from sqlalchemy import func, select

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
    from orders.checkout.place import request_hash

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
