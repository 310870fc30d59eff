"""POST /api/checkout/sync: the same steps, run in the request; answers when the order exists."""

from sqlalchemy import func, select

from orders.models import Checkout, Job, JobStatus, Order, Product
from tests.factories import checkout_body, make_product


def test_sync_checkout_answers_with_the_order_and_queues_only_the_email(
    client, session, dispatched
):
    make_product(session, sku="SYNC-TEE", price_cents=2500, stock=5)
    response = client.post("/api/checkout/sync", json=checkout_body(("SYNC-TEE", 2)))
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["success"] is True
    assert body["data"]["status"] == "completed"
    order = session.scalar(select(Order))
    assert body["data"]["order"]["orderNumber"] == order.order_number
    assert body["data"]["order"]["totalCents"] == 5000
    session.expire_all()
    product = session.scalar(select(Product).where(Product.sku == "SYNC-TEE"))
    assert (product.stock, product.sold) == (3, 2)
    # the four checkout steps ran here, through the job rows; only the email went out
    assert dispatched.types() == ["send-order-confirmation"]
    completed = session.scalar(
        select(func.count()).select_from(Job).where(Job.status == JobStatus.COMPLETED)
    )
    assert completed == 4


def test_sync_checkout_reports_a_declined_card_as_a_failed_checkout(client, session, dispatched):
    make_product(session, sku="SYNC-CAP", stock=5)
    body = checkout_body(("SYNC-CAP", 1), paymentToken="tok_declined")
    response = client.post("/api/checkout/sync", json=body)
    assert response.status_code == 200
    data = response.get_json()["data"]
    assert (data["status"], data["code"]) == ("failed", "payment_declined")
    session.expire_all()
    assert session.scalar(select(Product.stock).where(Product.sku == "SYNC-CAP")) == 5
    assert session.scalar(select(func.count()).select_from(Order)) == 0
    assert session.scalar(select(Checkout.status)).value == "failed"


def test_sync_checkout_errors_are_problem_json(client, session):
    response = client.post("/api/checkout/sync", json={"email": "x"})
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["errors"]
