"""Stock holds past their time limit (``STOCK_HOLD_SECONDS``), for the sweeper.

A hold whose time limit passed is released only when nothing will use it any more:
its checkout already ``failed`` (a hold left behind), or its checkout is stuck (live,
but no job of it is waiting or running, so nothing will ever move it). A stuck
checkout is failed with ``hold_expired`` and compensated like any other failure
(stock back, captured payment refunded) and flagged for an operator. A hold whose
checkout still has live work is kept: that work either completes the order (the
hold becomes a sale) or gives up with compensation, so stock is never sold twice.
"""

from __future__ import annotations

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from orders.config import Settings
from orders.db import utcnow
from orders.domain.states import TERMINAL
from orders.models import Checkout, CheckoutStage, HoldStatus, Job, JobStatus, StockHold
from orders.pipeline.compensation import fail_checkout, release_holds
from orders.pipeline.jobs import JobRef

LIVE = (JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.ACTIVE)
BATCH = 200


def expired_hold_checkouts(session: Session) -> list[int]:
    """Ids of checkouts with a hold past its time limit (``BATCH`` at most)."""
    return list(
        session.scalars(
            select(StockHold.checkout_id)
            .where(StockHold.status == HoldStatus.HELD, StockHold.expires_at < utcnow())
            .distinct()
            .limit(BATCH)
        )
    )


def release_expired(session: Session, settings: Settings, checkout_id: int) -> list[JobRef] | None:
    """Release one checkout's expired holds if nothing will use them any more (in the
    caller's transaction). The refund jobs to send, or None if the holds are kept."""
    checkout = session.get(Checkout, checkout_id, populate_existing=True)
    assert checkout is not None
    if checkout.stage is CheckoutStage.FAILED:
        release_holds(session, checkout, "stock hold expired")
        return []
    if checkout.stage not in TERMINAL and not _has_live_job(session, checkout_id):
        message = "Stock hold expired while the checkout was stuck"
        return fail_checkout(
            session, settings, checkout, "hold_expired", message, needs_attention=True
        )
    return None


def _has_live_job(session: Session, checkout_id: int) -> bool:
    return bool(
        session.scalar(select(exists().where(Job.checkout_id == checkout_id, Job.status.in_(LIVE))))
    )
