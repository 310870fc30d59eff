"""The whole pipeline against a real database, jobs run in-process by the real runner."""

import pytest
from sqlalchemy import func, select

from orders.db import make_engine, make_session_factory
from orders.models import (
    Checkout,
    CheckoutEvent,
    Email,
    EmailStatus,
    HoldStatus,
    Job,
    JobStatus,
    Order,
    Payment,
    PaymentStatus,
    Product,
    StockHold,
)
from tests.factories import checkout_body, make_product
from tests.support import Drain


@pytest.fixture(params=["alone", "batched"])
def drain(request, settings, dispatched):
    """Every test twice: each job alone, and each message as the consumers run it
    (claiming the other waiting jobs of its type: here batches of one)."""
    engine = make_engine(settings)
    yield Drain(
        settings, make_session_factory(engine), dispatched, batched=request.param == "batched"
    )
    engine.dispose()


def place(client, *items, **extra):
    response = client.post("/api/checkout", json=checkout_body(*items, **extra))
    assert response.status_code == 202, response.get_json()
    return response.get_json()["data"]["jobId"]


def status(client, job_id):
    return client.get(f"/api/orders/status/{job_id}").get_json()


def operator_timeline(session) -> list[str]:  # type: ignore[no-untyped-def]
    """Every timeline message, as the ops dashboard shows them (shoppers see the moves)."""
    session.expire_all()
    return list(session.scalars(select(CheckoutEvent.message).order_by(CheckoutEvent.id)))


def test_a_checkout_runs_every_step_to_completed(client, session, drain):
    product = make_product(session, sku="TEE", price_cents=2500, stock=5)
    job_id = place(client, ("TEE", 2))
    ran = drain()
    assert [t for t, _ in ran] == [
        "reserve-stock",
        "process-payment",
        "create-order",
        "update-inventory",
        "send-order-confirmation",
    ]
    assert {o for _, o in ran} == {"completed"}
    body = status(client, job_id)
    assert body["status"] == "completed" and body["progress"] == 100
    order = session.scalar(select(Order))
    assert body["order"] == {
        "orderId": order.id,
        "orderNumber": order.order_number,
        "totalCents": 5000,
    }
    session.expire_all()
    assert session.get(Product, product.id).stock == 3
    assert session.get(Product, product.id).sold == 2
    assert session.scalar(select(StockHold.status)) is HoldStatus.SOLD
    assert drain.gateway.ledger()["captures"] == 1
    email = session.scalar(select(Email))
    assert email.status is EmailStatus.STORED and order.order_number in email.subject

    detail = client.get(
        f"/api/orders/{order.order_number}", headers={"X-Job-Id": job_id}
    ).get_json()
    assert detail["view"] == "full"
    assert detail["items"] == [
        {"sku": "TEE", "name": product.name, "quantity": 2, "unitPriceCents": 2500}
    ]
    assert detail["payments"] == [{"status": "captured", "amountCents": 5000}]
    ids = [e["id"] for e in detail["timeline"]]  # the moves, in the shopper's words
    assert ids == sorted(ids) and len(ids) >= 6
    assert detail["timeline"][-1]["message"] == "Order confirmed"
    assert operator_timeline(session)[-1].startswith("Email")  # the dashboard's, not theirs


def test_out_of_stock_fails_without_a_charge(client, session, drain):
    product = make_product(session, sku="LAST", stock=1)
    first = place(client, ("LAST", 1))
    second = place(client, ("LAST", 1))  # validation saw stock 1; the hold decides
    drain()
    assert status(client, first)["status"] == "completed"
    assert status(client, second) == {
        "status": "failed",
        "error": f"{product.name} (LAST) is out of stock",
        "code": "out_of_stock",
    }
    session.expire_all()
    assert session.get(Product, product.id).stock == 0
    assert drain.gateway.ledger()["captures"] == 1
    assert session.scalar(select(func.count()).select_from(Order)) == 1


def test_a_multi_line_cart_holds_all_or_nothing(client, session, drain):
    plenty = make_product(session, sku="PLENTY", stock=10)
    make_product(session, sku="ONE", stock=1)
    place(client, ("ONE", 1))
    loser = place(client, ("PLENTY", 3), ("ONE", 1))
    drain()
    assert status(client, loser)["code"] == "out_of_stock"
    session.expire_all()
    assert session.get(Product, plenty.id).stock == 10  # its partial hold rolled back


def test_a_multi_line_sale_moves_every_line_and_flags_low_stock(client, session, drain):
    low = make_product(session, sku="FEW", stock=7)  # 7 - 3 = 4 <= the threshold (5)
    many = make_product(session, sku="MANY", stock=100)
    job_id = place(client, ("FEW", 3), ("MANY", 2))
    drain()
    assert status(client, job_id)["status"] == "completed"
    session.expire_all()
    assert (session.get(Product, low.id).stock, session.get(Product, low.id).sold) == (4, 3)
    assert (session.get(Product, many.id).stock, session.get(Product, many.id).sold) == (98, 2)
    holds = session.scalars(select(StockHold).order_by(StockHold.product_id)).all()
    assert [(h.product_id, h.quantity, h.status) for h in holds] == [
        (low.id, 3, HoldStatus.SOLD),
        (many.id, 2, HoldStatus.SOLD),
    ]
    messages = operator_timeline(session)
    assert "Low stock: FEW has 4 left" in messages
    assert not any("MANY" in message for message in messages)


def test_declined_card_releases_stock_and_another_card_completes(client, session, drain):
    product = make_product(session, sku="TEE", stock=5)
    job_id = place(client, ("TEE", 2), paymentToken="tok_declined")
    drain()
    assert status(client, job_id) == {
        "status": "failed",
        "error": "Payment declined: card declined",
        "code": "payment_declined",
    }
    session.expire_all()
    assert session.get(Product, product.id).stock == 5

    retry = client.post("/api/payments", json={"jobId": job_id, "paymentToken": "tok_visa"})
    assert retry.status_code == 202
    assert retry.get_json()["data"]["jobId"] == job_id
    assert status(client, job_id)["status"] == "queued"
    drain()
    assert status(client, job_id)["status"] == "completed"
    payments = session.scalars(select(Payment).order_by(Payment.id)).all()
    assert [p.status for p in payments] == [PaymentStatus.DECLINED, PaymentStatus.CAPTURED]
    assert payments[0].idempotency_key != payments[1].idempotency_key
    session.expire_all()
    assert session.get(Product, product.id).stock == 3


def test_payment_retry_is_refused_unless_declined(client, session, drain):
    make_product(session, sku="TEE", stock=5)
    job_id = place(client, ("TEE", 1))
    response = client.post("/api/payments", json={"jobId": job_id, "paymentToken": "tok_visa"})
    assert response.status_code == 409
    drain()
    assert (
        client.post("/api/payments", json={"jobId": job_id, "paymentToken": "tok_visa"}).status_code
        == 409
    )
    assert (
        client.post("/api/payments", json={"jobId": "nope", "paymentToken": "tok_visa"}).status_code
        == 404
    )
    bad = client.post("/api/payments", json={"jobId": job_id, "paymentToken": 7})
    assert bad.status_code == 422 and bad.get_json()["errors"][0]["field"] == "paymentToken"


def test_transient_gateway_errors_retry_then_fail_cleanly(client, session, drain):
    product = make_product(session, sku="TEE", stock=5)
    job_id = place(client, ("TEE", 1), paymentToken="tok_error")
    ran = drain()
    payment_outcomes = [o for t, o in ran if t == "process-payment"]
    assert payment_outcomes == ["retrying"] * 4 + ["failed"]
    body = status(client, job_id)
    assert body["status"] == "failed" and body["code"] == "payment_unavailable"
    session.expire_all()
    assert session.get(Product, product.id).stock == 5
    assert session.scalar(select(Checkout.needs_attention)) is True
    assert drain.gateway.ledger()["captures"] == 0


def test_a_flaky_gateway_is_retried_and_charges_once(client, session, drain):
    make_product(session, sku="TEE", stock=5)
    job_id = place(client, ("TEE", 1), paymentToken="tok_flaky")
    ran = drain()
    assert [o for t, o in ran if t == "process-payment"] == ["retrying", "completed"]
    assert status(client, job_id)["status"] == "completed"
    assert drain.gateway.ledger()["captures"] == 1
    assert any("attempt 1/5 failed" in m for m in operator_timeline(session))


def test_running_a_job_twice_has_the_effect_of_once(client, session, drain, dispatched):
    product = make_product(session, sku="TEE", stock=5)
    place(client, ("TEE", 2))
    for _ in range(6):
        refs = dispatched.take()
        if not refs:
            break
        for ref in refs:
            assert drain.run(ref.id) == "completed"
            assert drain.run(ref.id) == "skipped"  # a duplicate delivery does nothing
    session.expire_all()
    assert session.get(Product, product.id).stock == 3
    assert drain.gateway.ledger()["captures"] == 1
    assert session.scalar(select(func.count()).select_from(Order)) == 1


def test_every_job_row_ends_completed(client, session, drain):
    make_product(session, sku="TEE", stock=5)
    place(client, ("TEE", 1))
    drain()
    statuses = session.scalars(select(Job.status)).all()
    assert statuses and set(statuses) == {JobStatus.COMPLETED}


def test_inline_run_completes_a_checkout_in_the_calling_thread(client, session, drain, dispatched):
    from orders.pipeline.inline import run_inline

    make_product(session, sku="TEE", stock=5)
    job_id = place(client, ("TEE", 1), paymentToken="tok_flaky")
    leftover = run_inline(
        drain.sessions,
        drain.ctx,
        dispatched.take(),
        include=frozenset({"reserve-stock", "process-payment", "create-order", "update-inventory"}),
    )
    assert status(client, job_id)["status"] == "completed"
    assert [r.type for r in leftover] == ["send-order-confirmation"]
    assert drain.gateway.ledger()["captures"] == 1


def test_an_email_is_recorded_once_per_dedupe_key(session, settings):
    from orders.pipeline.emails import email_row, record_emails

    def row(subject, key="order-confirmation:test"):
        return email_row(
            settings,
            kind="order_confirmation",
            dedupe_key=key,
            to_addr="shopper@example.com",
            subject=subject,
            lines=["Thank you <3"],
        )

    (first,) = record_emails(session, [row("first")])
    # the same key again, beside a new one: the first row stands, the new one is added
    again, other = record_emails(session, [row("second"), row("other", "order-confirmation:2")])
    session.commit()
    emails = session.scalars(select(Email).order_by(Email.id)).all()
    assert first == again == emails[0].id and other == emails[1].id and len(emails) == 2
    assert emails[0].subject == "first" and emails[0].status is EmailStatus.PENDING
    assert emails[0].body_html == "<p>Thank you &lt;3</p>" and emails[0].created_at is not None


def test_streams_are_woken_after_each_commit_that_added_events_and_only_then(
    client, session, drain
):
    from orders.models import CheckoutEvent

    make_product(session, sku="TEE", stock=5)
    job_id = place(client, ("TEE", 1))
    seen: list[int] = []  # the checkout's committed events at each wake-up

    def publish(public_id: str) -> None:
        assert public_id == job_id
        with drain.sessions() as reader:
            seen.append(reader.scalar(select(func.count()).select_from(CheckoutEvent)))

    drain.ctx.publish = publish
    drain()
    assert status(client, job_id)["status"] == "completed"
    total = session.scalar(select(func.count()).select_from(CheckoutEvent))
    # every wake-up has something new to read, and the last event is never left unannounced
    assert seen == sorted(set(seen)) and seen[-1] == total
    # 5 jobs x (step entry + step result) = 10 commits; reserve-stock's result and the
    # email's entry add no event, so they wake no one
    assert len(seen) == 8


def test_each_job_commits_its_claim_and_its_result_and_nothing_else(client, session, drain):
    """What a step reads (its lines, its payments, its email) is loaded in the claim's
    transaction: no job opens a read transaction of its own (two commits per job)."""
    from sqlalchemy import event

    make_product(session, sku="TEE", stock=5)
    place(client, ("TEE", 1))
    engine = drain.sessions.kw["bind"]
    commits: list[int] = []

    def count(_conn) -> None:
        commits.append(1)

    event.listen(engine, "commit", count)
    try:
        ran = drain()
    finally:
        event.remove(engine, "commit", count)
    assert len(ran) == 5 and {o for _, o in ran} == {"completed"}
    assert len(commits) == 2 * len(ran)
