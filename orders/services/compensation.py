"""Ending a checkout as failed, and undoing its side effects.

Stock held and not sold goes back on the shelf; a captured payment gets a durable
refund job. Every compensation is written in the timeline.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from orders.config import Settings
from orders.db import utcnow
from orders.jobtypes import REFUND_PAYMENT
from orders.models import (
    Checkout,
    CheckoutStage,
    HoldStatus,
    Job,
    JobStatus,
    Payment,
    PaymentStatus,
    Product,
    StockHold,
)
from orders.services.context import PipelineContext
from orders.services.jobs import Claim, close, new_job
from orders.services.timeline import move_checkout, record_event


def close_holds(session: Session, checkout: Checkout, to: HoldStatus) -> int:
    """Close every ``held`` hold of a checkout; return the units closed.

    ``released`` puts the units back in stock; ``sold`` counts them as sold. Each
    hold closes with a conditional UPDATE, so running this twice changes nothing.
    """
    holds = session.scalars(
        select(StockHold).where(
            StockHold.checkout_id == checkout.id, StockHold.status == HoldStatus.HELD
        )
    ).all()
    units = 0
    now = utcnow()
    for hold in holds:
        closed = session.execute(
            update(StockHold)
            .where(StockHold.id == hold.id, StockHold.status == HoldStatus.HELD)
            .values(status=to, closed_at=now)
            .execution_options(synchronize_session=False)
        )
        if closed.rowcount != 1:  # type: ignore[attr-defined]
            continue
        change = (
            {"stock": Product.stock + hold.quantity}
            if to is HoldStatus.RELEASED
            else {"sold": Product.sold + hold.quantity}
        )
        session.execute(
            update(Product)
            .where(Product.id == hold.product_id)
            .values(**change)
            .execution_options(synchronize_session=False)
        )
        units += hold.quantity
    return units


def release_holds(session: Session, checkout: Checkout, reason: str) -> int:
    """Put back every unit this checkout holds; return how many units went back."""
    units = close_holds(session, checkout, HoldStatus.RELEASED)
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
    return jobs


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


def give_up_refund(session: Session, claim: Claim, checkout: Checkout | None, error: str) -> None:
    """A refund that keeps failing needs a person: flag the checkout on the dashboard."""
    if checkout is not None:
        checkout.needs_attention = True
        record_event(
            session,
            checkout,
            f"Refund failed after {claim.attempt} attempts ({error}); operator action needed",
        )
