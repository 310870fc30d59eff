"""The sweeper re-drives what the queue lost, and gives up cleanly on what keeps dying."""

from datetime import timedelta

import pytest
from sqlalchemy import select, text, update

from orders.db import utcnow
from orders.errors import LeaseLost
from orders.models import (
    Checkout,
    CheckoutEvent,
    HoldStatus,
    Job,
    JobStatus,
    Payment,
    PaymentStatus,
    Product,
    StockHold,
)
from orders.pipeline.leases import close
from orders.pipeline.sweeper import sweep
from tests.factories import checkout_body, make_product
from tests.support import take


def place(client, *items, **extra):
    response = client.post("/api/checkout", json=checkout_body(*items, **extra))
    assert response.status_code == 202
    return response.get_json()["data"]["jobId"]


def sweep_now(drain):
    with drain.sessions() as session:
        return sweep(session, drain.ctx)


def expire_leases(session):
    session.execute(
        update(Job)
        .where(Job.status == JobStatus.ACTIVE)
        .values(lease_until=utcnow() - timedelta(seconds=1))
    )
    session.commit()


def test_work_the_broker_never_got_is_sent_by_the_sweeper(app, client, session, drain, dispatched):
    make_product(session, sku="TEE", stock=5)
    dispatched.fail = True  # the broker is down at checkout time
    job_id = place(client, ("TEE", 1))
    assert dispatched.refs == []
    assert session.scalar(select(Job.enqueued_at)) is None  # recorded as not sent
    dispatched.fail = False  # the broker is back
    report = sweep_now(drain)
    assert report.resent == 1
    drain()
    assert client.get(f"/api/orders/status/{job_id}").get_json()["status"] == "completed"


def test_an_expired_lease_is_re_driven_and_the_zombie_cannot_write(client, session, drain):
    product = make_product(session, sku="TEE", stock=5)
    job_id = place(client, ("TEE", 2))
    first = drain.dispatched.take()[0]
    with drain.sessions() as worker_session:
        zombie = take(worker_session, first.id, "zombie", lease_seconds=30)
    assert zombie is not None and zombie.attempt == 1
    expire_leases(session)

    report = sweep_now(drain)
    assert report.expired == 1
    messages = session.scalars(select(CheckoutEvent.message)).all()
    assert "reserve-stock re-driven after lease expiry, attempt 2/5" in messages

    drain()  # the re-driven job runs to the end
    with drain.sessions() as worker_session, pytest.raises(LeaseLost):
        close(worker_session, zombie, JobStatus.COMPLETED)  # the zombie wakes up: refused
    assert client.get(f"/api/orders/status/{job_id}").get_json()["status"] == "completed"
    session.expire_all()
    assert session.get(Product, product.id).stock == 3  # held once, not twice


def test_a_step_that_keeps_dying_fails_the_checkout_with_compensation(client, session, drain):
    """Payment captured, then create-order's worker dies on every attempt: refund, release."""
    product = make_product(session, sku="TEE", stock=5)
    job_id = place(client, ("TEE", 1))
    for _ in range(2):  # reserve-stock, process-payment
        for ref in drain.dispatched.take():
            assert drain.run(ref.id) == "completed"
    create_order = drain.dispatched.take()[0]
    assert create_order.type == "create-order"
    for _attempt in range(5):
        with drain.sessions() as worker_session:
            assert take(worker_session, create_order.id, "doomed", 30) is not None
        expire_leases(session)  # the worker died mid-step
        sweep_now(drain)
        drain.dispatched.refs = [r for r in drain.dispatched.refs if r.id != create_order.id]
    body = client.get(f"/api/orders/status/{job_id}").get_json()
    assert body["status"] == "failed" and body["code"] == "processing_error"
    drain()  # the refund job
    session.expire_all()
    assert session.get(Product, product.id).stock == 5
    assert session.scalar(select(StockHold.status)) is HoldStatus.RELEASED
    assert session.scalar(select(Payment.status)) is PaymentStatus.REFUNDED
    assert session.scalar(select(Checkout.needs_attention)) is True
    ledger = drain.gateway.ledger()
    assert ledger["captures"] == 1 and ledger["refunds"] == 1
    assert ledger["captured_cents"] == ledger["refunded_cents"]
    messages = session.scalars(select(CheckoutEvent.message)).all()
    assert any(m.startswith("Released 1 held unit") for m in messages)
    assert any(m.startswith("Refunded") for m in messages)


def test_a_message_lost_by_the_broker_is_resent_after_the_requeue_delay(
    client, session, drain, dispatched
):
    make_product(session, sku="TEE", stock=5)
    job_id = place(client, ("TEE", 1))
    dispatched.take()  # the message vanished (an empty Redis after a restart)
    assert sweep_now(drain).resent == 0  # not yet: it may just be waiting in a long queue
    session.execute(update(Job).values(enqueued_at=utcnow() - timedelta(seconds=3600)))
    session.commit()
    assert sweep_now(drain).resent == 1
    drain()
    assert client.get(f"/api/orders/status/{job_id}").get_json()["status"] == "completed"


def test_sweeping_a_healthy_system_does_nothing(client, session, drain):
    make_product(session, sku="TEE", stock=5)
    place(client, ("TEE", 1))
    drain()
    assert not sweep_now(drain)


def test_a_capture_whose_worker_died_before_recording_is_not_charged_again(client, session, drain):
    from orders.pipeline.compensation import payment_key

    make_product(session, sku="TEE", stock=5)
    job_id = place(client, ("TEE", 1))
    reserve = drain.dispatched.take()[0]
    assert drain.run(reserve.id) == "completed"
    pay = drain.dispatched.take()[0]
    checkout = session.scalar(select(Checkout).where(Checkout.public_id == job_id))
    with drain.sessions() as worker_session:
        assert take(worker_session, pay.id, "dies-after-charging", 30) is not None
    # the gateway charged, then the worker was killed before its transaction committed
    drain.gateway.charge(
        amount_cents=checkout.total_cents, token="tok_visa", idempotency_key=payment_key(checkout)
    )
    expire_leases(session)
    sweep_now(drain)
    drain()
    assert client.get(f"/api/orders/status/{job_id}").get_json()["status"] == "completed"
    assert drain.gateway.ledger()["captures"] == 1
    assert session.scalar(select(Payment.status)) is PaymentStatus.CAPTURED


def test_the_sweeper_wakes_the_streams_of_checkouts_it_moves(client, session, drain):
    make_product(session, sku="TEE", stock=5)
    job_id = place(client, ("TEE", 1))
    first = drain.dispatched.take()[0]
    with drain.sessions() as worker_session:
        assert take(worker_session, first.id, "dies", 30) is not None
    expire_leases(session)
    published: list[str] = []
    drain.ctx.publish = published.append
    sweep_now(drain)
    assert published == [job_id]


@pytest.mark.postgres  # SQLite has no row locks
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_the_sweeper_skips_a_lost_job_another_transaction_holds(client, session, drain, dispatched):
    """A lost job whose row another transaction holds (a batch closing it, retention
    deleting it) is left for the next round, not waited for: waiting deadlocked."""
    make_product(session, sku="TEE", stock=5)
    held = place(client, ("TEE", 1))
    place(client, ("TEE", 1))
    dispatched.take()  # both messages vanished
    session.execute(update(Job).values(enqueued_at=utcnow() - timedelta(seconds=3600)))
    session.commit()
    holder = drain.sessions()
    try:
        holder.execute(text("SET lock_timeout = '2s'"))
        locked = holder.scalar(
            select(Job.id)
            .join(Checkout, Checkout.id == Job.checkout_id)
            .where(Checkout.public_id == held)
            .with_for_update()
        )
        with drain.sessions() as sweeping:
            sweeping.execute(text("SET lock_timeout = '2s'"))  # waiting would raise
            report = sweep(sweeping, drain.ctx)
        assert report.resent == 1
        assert locked not in [ref.id for ref in dispatched.take()]
    finally:
        holder.rollback()
        holder.close()
    assert sweep_now(drain).resent == 1  # released: the next round sends it
    assert [ref.id for ref in dispatched.take()] == [locked]
