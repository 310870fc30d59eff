"""Ending a checkout as failed, and undoing its side effects.

Stock held and not sold goes back on the shelf; a captured payment gets a durable
refund job. Every compensation is written in the timeline.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Update, bindparam, select, update
from sqlalchemy.orm import Session

from orders.config import Settings
from orders.db import utcnow
from orders.models import (
    Checkout,
    CheckoutStage,
    HoldStatus,
    Job,
    Payment,
    PaymentStatus,
)
from orders.models.tables import HOLDS, PRODUCTS
from orders.pipeline.jobs import JobRef, new_job
from orders.pipeline.jobtypes import PROCESS_PAYMENT, REFUND_PAYMENT
from orders.pipeline.timeline import move_checkout, record_event


def payment_key(checkout: Checkout) -> str:
    """The gateway idempotency key: one per checkout and card attempt."""
    return f"pay_{checkout.public_id}_{checkout.payment_attempt}"


def close_holds(session: Session, checkout: Checkout, to: HoldStatus) -> dict[int, int]:
    """Close every ``held`` hold of a checkout; return the units closed per product id.

    ``released`` puts the units back in stock; ``sold`` counts them as sold. One
    conditional UPDATE closes the holds and returns the ones it moved, so running this
    twice (or beside the sweeper's expiry) changes nothing the second time.
    """
    closed = session.execute(
        update(HOLDS)
        .where(HOLDS.c.checkout_id == checkout.id, HOLDS.c.status == HoldStatus.HELD)
        .values(status=to, closed_at=utcnow())
        .returning(HOLDS.c.product_id, HOLDS.c.quantity)
    ).all()
    return apply_units(session, closed, to)


def apply_units(
    session: Session, closed: Iterable[tuple[int, int]], to: HoldStatus
) -> dict[int, int]:
    """Put closed holds' (product id, units) back in stock or count them as sold: one
    UPDATE per product, sent together (one round trip on PostgreSQL, whose driver
    pipelines a statement run over many rows) in product id order, the one lock order of
    every stock move. The units per product id."""
    units: dict[int, int] = {}
    for product_id, quantity in sorted(closed):
        units[product_id] = units.get(product_id, 0) + quantity
    if units:
        change = _UNITS[to]  # released or sold
        session.execute(change, [{"p_id": p, "p_units": n} for p, n in units.items()])
    return units


def _add_units(column: Any) -> Update:
    return (
        update(PRODUCTS)
        .where(PRODUCTS.c.id == bindparam("p_id"))
        .values({column: column + bindparam("p_units")})
    )


# built once, their values bound: released units go back in stock, sold ones are counted
_UNITS = {
    HoldStatus.RELEASED: _add_units(PRODUCTS.c.stock),
    HoldStatus.SOLD: _add_units(PRODUCTS.c.sold),
}


def release_holds(session: Session, checkout: Checkout, reason: str) -> int:
    """Put back every unit this checkout holds; return how many units went back."""
    units = sum(close_holds(session, checkout, HoldStatus.RELEASED).values())
    if units:
        record_event(session, checkout, f"Released {units} held unit(s): {reason}")
    return units


def refund_jobs_for(session: Session, settings: Settings, checkout: Checkout) -> list[JobRef]:
    """A refund job for each captured payment of a checkout that will not complete."""
    payments = session.scalars(
        select(Payment).where(
            Payment.checkout_id == checkout.id, Payment.status == PaymentStatus.CAPTURED
        )
    ).all()
    jobs = []
    for payment in payments:
        jobs.append(
            new_job(session, settings, REFUND_PAYMENT, checkout=checkout, payment_id=payment.id)
        )
        record_event(
            session,
            checkout,
            f"Refund of {payment.amount_cents} cents scheduled ({payment.gateway_ref})",
        )
    if _charge_may_be_unrecorded(session, checkout):
        jobs.append(new_job(session, settings, REFUND_PAYMENT, checkout=checkout))
        record_event(
            session,
            checkout,
            "A charge may have been made and not recorded; checking the gateway to refund it",
        )
    return jobs


def _charge_may_be_unrecorded(session: Session, checkout: Checkout) -> bool:
    """A payment step ran (a worker may have charged, then died) but left no record."""
    recorded = session.scalar(
        select(Payment.id).where(Payment.idempotency_key == payment_key(checkout))
    )
    if recorded is not None:
        return False
    tried = session.scalar(
        select(Job.id).where(
            Job.checkout_id == checkout.id, Job.type == PROCESS_PAYMENT.name, Job.attempts > 0
        )
    )
    return tried is not None


def fail_checkout(
    session: Session,
    settings: Settings,
    checkout: Checkout,
    code: str,
    message: str,
    *,
    needs_attention: bool = False,
) -> list[JobRef]:
    """Move the checkout to ``failed`` and compensate. Returns jobs to dispatch."""
    if checkout.stage in (CheckoutStage.COMPLETED, CheckoutStage.FAILED):
        return []
    release_holds(session, checkout, message)
    jobs = refund_jobs_for(session, settings, checkout)
    if needs_attention:
        checkout.needs_attention = True
    move_checkout(
        session, checkout, CheckoutStage.FAILED, message, error_code=code, error_message=message
    )
    return jobs
