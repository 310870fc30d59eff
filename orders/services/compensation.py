"""Ending a checkout as failed, and undoing its side effects.

Stock held and not sold goes back on the shelf; a captured payment gets a durable
refund job. Every compensation is written in the timeline.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from orders.config import Settings
from orders.db import utcnow
from orders.jobtypes import PROCESS_PAYMENT, REFUND_PAYMENT
from orders.models import (
    Checkout,
    CheckoutStage,
    HoldStatus,
    Job,
    JobStatus,
    Payment,
    PaymentStatus,
)
from orders.models.tables import HOLDS, PRODUCTS
from orders.services.context import PipelineContext
from orders.services.jobs import new_job
from orders.services.leases import Claim, close
from orders.services.timeline import move_checkout, record_event


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
    """Put closed holds' (product id, units) back in stock or count them as sold, one
    UPDATE per product; return the units per product id."""
    units: dict[int, int] = {}
    for product_id, quantity in sorted(closed):  # one lock order, as reserve-stock's
        units[product_id] = units.get(product_id, 0) + quantity
    for product_id, quantity in units.items():
        change = (
            {"stock": PRODUCTS.c.stock + quantity}
            if to is HoldStatus.RELEASED
            else {"sold": PRODUCTS.c.sold + quantity}
        )
        session.execute(update(PRODUCTS).where(PRODUCTS.c.id == product_id).values(**change))
    return units


def release_holds(session: Session, checkout: Checkout, reason: str) -> int:
    """Put back every unit this checkout holds; return how many units went back."""
    units = sum(close_holds(session, checkout, HoldStatus.RELEASED).values())
    if units:
        record_event(session, checkout, f"Released {units} held unit(s): {reason}")
    return units


def refund_jobs_for(session: Session, settings: Settings, checkout: Checkout) -> list[Job]:
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
) -> list[Job]:
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


def refund_payment(
    session: Session, claim: Claim, checkout: Checkout | None, ctx: PipelineContext
) -> list[Job]:
    """Refund a captured payment at the gateway (idempotent by key), then record it."""
    if claim.payment_id is None:
        assert checkout is not None, f"job {claim.job_id} has neither payment nor checkout"
        return _refund_unrecorded(session, claim, checkout, ctx)
    payment = session.get(Payment, claim.payment_id)
    assert payment is not None, f"job {claim.job_id} has no payment"
    session.commit()
    if payment.status is PaymentStatus.CAPTURED:
        refund_ref = ctx.gateway.refund(
            gateway_ref=payment.gateway_ref or "",
            amount_cents=payment.amount_cents,
            idempotency_key=f"refund_{payment.idempotency_key}",
        )
        close(session, claim, JobStatus.COMPLETED)
        session.execute(
            update(Payment)
            .where(Payment.id == payment.id, Payment.status == PaymentStatus.CAPTURED)
            .values(status=PaymentStatus.REFUNDED, refunded_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        if checkout is not None:
            record_event(session, checkout, f"Refunded {payment.amount_cents} cents ({refund_ref})")
    else:
        close(session, claim, JobStatus.COMPLETED)
    return []


def _refund_unrecorded(
    session: Session, claim: Claim, checkout: Checkout, ctx: PipelineContext
) -> list[Job]:
    """Ask the gateway for the charge made with this checkout's key; record and refund it."""
    key = payment_key(checkout)
    session.commit()
    found = ctx.gateway.find_charge(idempotency_key=key)
    if found is None or not found.captured:
        close(session, claim, JobStatus.COMPLETED)
        record_event(session, checkout, "No charge at the gateway: nothing to refund")
        return []
    refund_ref = ctx.gateway.refund(
        gateway_ref=found.gateway_ref or "",
        amount_cents=checkout.total_cents,
        idempotency_key=f"refund_{key}",
    )
    close(session, claim, JobStatus.COMPLETED)
    if session.scalar(select(Payment.id).where(Payment.idempotency_key == key)) is None:
        session.add(
            Payment(
                checkout_id=checkout.id,
                amount_cents=checkout.total_cents,
                status=PaymentStatus.REFUNDED,
                gateway_ref=found.gateway_ref,
                idempotency_key=key,
                refunded_at=utcnow(),
            )
        )
    record_event(
        session,
        checkout,
        f"Refunded {checkout.total_cents} cents charged but never recorded ({refund_ref})",
    )
    return []


def give_up_refund(session: Session, claim: Claim, checkout: Checkout | None, error: str) -> None:
    """A refund that keeps failing needs a person: flag the checkout on the dashboard."""
    if checkout is not None:
        checkout.needs_attention = True
        record_event(
            session,
            checkout,
            f"Refund failed after {claim.attempt} attempts ({error}); operator action needed",
        )
