"""Take the payment: one gateway call per checkout, by its idempotency key.

A payment already recorded under the checkout's key (a re-run) is not charged
again: its recorded outcome stands. A declined card fails the checkout
(``payment_declined``) and releases its stock; a gateway error or an open breaker
is the item's outcome (a retry, a wait), and its call is not made again.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from orders.infra.gateway import ChargeResult
from orders.models import Checkout, EventType, Payment, PaymentStatus
from orders.pipeline.compensation import fail_checkout, payment_key
from orders.pipeline.context import PipelineContext
from orders.pipeline.jobs import JobRef, next_jobs
from orders.pipeline.step import Item, Step
from orders.pipeline.timeline import record_events


def load(session: Session, items: Sequence[Item]) -> None:
    """Each checkout's payment under its current key, if one was recorded."""
    keys = {payment_key(item.checkout): item for item in items if item.checkout is not None}
    for item in items:
        item.loaded = None
    for payment in session.scalars(select(Payment).where(Payment.idempotency_key.in_(list(keys)))):
        keys[payment.idempotency_key].loaded = payment


def call(item: Item, ctx: PipelineContext) -> ChargeResult | None:
    """Charge, unless a payment under this key is recorded (None)."""
    checkout = item.checkout
    assert checkout is not None
    if item.loaded is not None:
        return None
    return ctx.gateway.charge(
        amount_cents=checkout.total_cents,
        token=checkout.payment_token,
        idempotency_key=payment_key(checkout),
    )


def write(session: Session, items: Sequence[Item], ctx: PipelineContext) -> list[JobRef]:
    payments: list[tuple[Checkout, Payment]] = []
    for item in items:
        assert item.checkout is not None
        payment = item.loaded
        if payment is None:
            payment = payment_row(item.checkout, payment_key(item.checkout), item.result)
            session.add(payment)
        payments.append((item.checkout, payment))
    refs: list[JobRef] = []
    for checkout, payment in payments:
        if payment.status is PaymentStatus.DECLINED:  # rare: its own words and compensation
            refs += decline(session, ctx, checkout, payment.decline_reason)
    captured = [c for c, p in payments if p.status is not PaymentStatus.DECLINED]
    record_events(
        session,
        [(c, f"Payment of {c.total_cents} cents captured", EventType.INFO, None) for c in captured],
    )
    return refs + next_jobs(session, ctx.settings, items[0].claim.type, captured)


def payment_row(checkout: Checkout, key: str, result: ChargeResult) -> Payment:
    """The payment to record for a charge's result."""
    return Payment(
        checkout_id=checkout.id,
        amount_cents=checkout.total_cents,
        status=PaymentStatus.CAPTURED if result.captured else PaymentStatus.DECLINED,
        gateway_ref=result.gateway_ref,
        idempotency_key=key,
        decline_reason=result.decline_reason,
    )


def decline(
    session: Session, ctx: PipelineContext, checkout: Checkout, reason: str | None
) -> list[JobRef]:
    """A declined card fails its checkout (``payment_declined``), with compensation."""
    words = (reason or "card_declined").replace("_", " ")
    return fail_checkout(
        session, ctx.settings, checkout, "payment_declined", f"Payment declined: {words}"
    )


STEP = Step(write, load, call)
