"""Refund a captured payment at the gateway (idempotent by key), then record it.

A refund job without a payment comes from a checkout whose payment step may have
charged and died before recording: the gateway is asked for the charge made under
the checkout's key, and that charge is recorded and refunded. A refund that keeps
failing needs a person: the checkout is flagged on the dashboard.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from orders.db import utcnow
from orders.models import Checkout, Payment, PaymentStatus
from orders.pipeline.compensation import payment_key
from orders.pipeline.context import PipelineContext
from orders.pipeline.jobs import JobRef
from orders.pipeline.leases import Claim
from orders.pipeline.step import Item, Step
from orders.pipeline.timeline import record_event


@dataclass(frozen=True)
class Refunded:
    refund_ref: str
    gateway_ref: str | None  # the charge found at the gateway (an unrecorded charge)


def load(session: Session, items: Sequence[Item]) -> None:
    """Each job's payment, if it names one."""
    for item in items:
        payment_id = item.claim.payment_id
        item.loaded = session.get(Payment, payment_id) if payment_id is not None else None
        assert item.loaded is not None or item.checkout is not None, (
            f"job {item.claim.job_id} has neither payment nor checkout"
        )


def call(item: Item, ctx: PipelineContext) -> Refunded | None:
    """Refund at the gateway; None when there is nothing (left) to refund."""
    payment: Payment | None = item.loaded
    if payment is not None:
        if payment.status is not PaymentStatus.CAPTURED:
            return None
        refund_ref = ctx.gateway.refund(
            gateway_ref=payment.gateway_ref or "",
            amount_cents=payment.amount_cents,
            idempotency_key=f"refund_{payment.idempotency_key}",
        )
        return Refunded(refund_ref, payment.gateway_ref)
    assert item.checkout is not None
    key = payment_key(item.checkout)
    found = ctx.gateway.find_charge(idempotency_key=key)
    if found is None or not found.captured:
        return None
    refund_ref = ctx.gateway.refund(
        gateway_ref=found.gateway_ref or "",
        amount_cents=item.checkout.total_cents,
        idempotency_key=f"refund_{key}",
    )
    return Refunded(refund_ref, found.gateway_ref)


def write(session: Session, items: Sequence[Item], _ctx: PipelineContext) -> list[JobRef]:
    for item in items:
        if item.loaded is not None:
            _record_refund(session, item.loaded, item.checkout, item.result)
        else:
            assert item.checkout is not None
            _record_unrecorded(session, item.checkout, item.result)
    return []


def _record_refund(
    session: Session, payment: Payment, checkout: Checkout | None, done: Refunded | None
) -> None:
    if done is None:
        return
    session.execute(
        update(Payment)
        .where(Payment.id == payment.id, Payment.status == PaymentStatus.CAPTURED)
        .values(status=PaymentStatus.REFUNDED, refunded_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if checkout is not None:
        record_event(
            session, checkout, f"Refunded {payment.amount_cents} cents ({done.refund_ref})"
        )


def _record_unrecorded(session: Session, checkout: Checkout, done: Refunded | None) -> None:
    if done is None:
        record_event(session, checkout, "No charge at the gateway: nothing to refund")
        return
    key = payment_key(checkout)
    if session.scalar(select(Payment.id).where(Payment.idempotency_key == key)) is None:
        session.add(
            Payment(
                checkout_id=checkout.id,
                amount_cents=checkout.total_cents,
                status=PaymentStatus.REFUNDED,
                gateway_ref=done.gateway_ref,
                idempotency_key=key,
                refunded_at=utcnow(),
            )
        )
    record_event(
        session,
        checkout,
        f"Refunded {checkout.total_cents} cents charged but never recorded ({done.refund_ref})",
    )


def give_up(session: Session, claim: Claim, checkout: Checkout | None, error: str) -> None:
    """A refund that keeps failing needs a person: flag the checkout on the dashboard."""
    if checkout is not None:
        checkout.needs_attention = True
        record_event(
            session,
            checkout,
            f"Refund failed after {claim.attempt} attempts ({error}); operator action needed",
        )


STEP = Step(write, load, call, give_up)
