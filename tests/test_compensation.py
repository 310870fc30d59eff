"""Compensation the sweeper drives: expired stock holds, charges made but never recorded."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from orders.db import utcnow
from orders.models import Checkout, CheckoutEvent, Job, JobStatus, Product, StockHold
from orders.pipeline.sweeper import sweep
from tests.factories import checkout_body, make_product
from tests.support import take


def place(client, sku: str, token: str = "tok_visa") -> str:
    response = client.post("/api/checkout", json=checkout_body((sku, 1), paymentToken=token))
    assert response.status_code == 202
    return response.get_json()["data"]["jobId"]


def events(session, public_id: str) -> list[str]:
    session.expire_all()
    checkout = session.scalar(select(Checkout).where(Checkout.public_id == public_id))
    return [
        e.message
        for e in session.scalars(
            select(CheckoutEvent)
            .where(CheckoutEvent.checkout_id == checkout.id)
            .order_by(CheckoutEvent.id)
        )
    ]


def checkout_of(session, public_id: str) -> Checkout:
    session.expire_all()
    return session.scalar(select(Checkout).where(Checkout.public_id == public_id))


def die_holding(drain, job_type: str) -> str:
    """A worker takes the next job of this type, then dies (its lease already expired)."""
    job_id = next(r.id for r in drain.dispatched.take() if r.type == job_type)
    with drain.sessions() as s:
        assert take(s, job_id, "doomed-worker", lease_seconds=-1) is not None
    return job_id


def expire_holds(session) -> None:
    session.execute(update(StockHold).values(expires_at=utcnow() - timedelta(seconds=1)))
    session.commit()


def test_an_expired_hold_of_a_stuck_checkout_is_released_and_refunded(client, session, drain):
    make_product(session, sku="STUCK", stock=3, price_cents=800)
    public_id = place(client, "STUCK")
    drain.run(drain.dispatched.take()[0].id)  # reserve-stock
    drain.run(drain.dispatched.take()[0].id)  # process-payment: captured
    # the create-order job is lost for good (say, deleted by hand): nothing will move it
    lost = drain.dispatched.take()[0]
    session.execute(update(Job).where(Job.id == lost.id).values(status=JobStatus.DISCARDED))
    session.commit()
    expire_holds(session)
    with drain.sessions() as s:
        assert sweep(s, drain.ctx).holds_released == 1
    checkout = checkout_of(session, public_id)
    assert checkout.status.value == "failed" and checkout.error_code == "hold_expired"
    assert checkout.needs_attention
    assert session.scalar(select(Product.stock).where(Product.sku == "STUCK")) == 3
    drain()  # the refund job
    ledger = drain.gateway.ledger()
    assert ledger["refunds"] == 1 and ledger["refunded_cents"] == 800
    timeline = events(session, public_id)
    assert "Released 1 held unit(s): Stock hold expired while the checkout was stuck" in timeline
    assert any(m.startswith("Refunded 800 cents") for m in timeline)


def test_an_expired_hold_with_live_work_is_kept(client, session, drain):
    make_product(session, sku="LIVE", stock=3)
    public_id = place(client, "LIVE")
    drain.run(drain.dispatched.take()[0].id)  # held; process-payment is waiting
    expire_holds(session)
    with drain.sessions() as s:
        assert sweep(s, drain.ctx).holds_released == 0
    drain()
    assert checkout_of(session, public_id).status.value == "completed"
    assert session.scalar(select(Product.stock).where(Product.sku == "LIVE")) == 2


def test_a_hold_left_on_a_failed_checkout_is_released(client, session, drain):
    make_product(session, sku="LEFT", stock=3)
    public_id = place(client, "LEFT")
    drain.run(drain.dispatched.take()[0].id)
    checkout = checkout_of(session, public_id)
    session.execute(
        update(Checkout)
        .where(Checkout.id == checkout.id)
        .values(stage="failed", status="failed", error_code="processing_error")
    )
    session.execute(update(Job).values(status=JobStatus.DISCARDED))
    session.commit()
    expire_holds(session)
    with drain.sessions() as s:
        assert sweep(s, drain.ctx).holds_released == 1
    assert session.scalar(select(Product.stock).where(Product.sku == "LEFT")) == 3
    assert "Released 1 held unit(s): stock hold expired" in events(session, public_id)


def test_a_charge_made_by_a_worker_that_died_is_found_and_refunded(
    client, session, drain, settings
):
    from orders.pipeline.compensation import payment_key

    make_product(session, sku="ORPHAN", stock=3, price_cents=1700)
    public_id = place(client, "ORPHAN")
    drain.run(drain.dispatched.take()[0].id)
    job_id = die_holding(drain, "process-payment")
    # the doomed worker got as far as the gateway: captured, never recorded
    drain.gateway.charge(
        amount_cents=1700,
        token="tok_visa",
        idempotency_key=payment_key(checkout_of(session, public_id)),
    )
    for _ in range(settings.max_attempts - 1):
        with drain.sessions() as s:
            sweep(s, drain.ctx)
        drain.dispatched.take()
        with drain.sessions() as s:
            assert take(s, job_id, "doomed-worker", lease_seconds=-1) is not None
    with drain.sessions() as s:
        assert sweep(s, drain.ctx).gave_up == 1
    assert [r.type for r in drain.dispatched.refs] == ["refund-payment"]
    drain()
    ledger = drain.gateway.ledger()
    assert ledger["captures"] == 1 and ledger["refunds"] == 1
    assert ledger["refunded_cents"] == 1700
    assert any("charged but never recorded" in m for m in events(session, public_id))


def test_a_payment_that_never_reached_the_gateway_refunds_nothing(client, session, drain):
    make_product(session, sku="NOCHARGE", stock=3)
    public_id = place(client, "NOCHARGE", token="tok_error")
    drain()  # every attempt fails at the gateway: payment_unavailable
    checkout = checkout_of(session, public_id)
    assert checkout.error_code == "payment_unavailable"
    assert drain.gateway.ledger()["refunds"] == 0
    assert "No charge at the gateway: nothing to refund" in events(session, public_id)
