"""The sweeper: re-drive work the queue lost, give up on work that keeps dying.

Huey deletes a message when a worker takes it, so a worker killed mid-step loses
it for good. The job rows remember: every ``SWEEP_INTERVAL_SECONDS`` this
re-enqueues jobs whose lease expired, jobs that never reached the broker (it was
down), and jobs that waited far longer than they should (the broker lost them, e.g.
an empty Redis after a restart). Re-enqueueing twice is harmless: a claim is
conditional, so only one delivery runs the step.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import TypeVar

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from orders.db import rowcount, utcnow
from orders.errors import LeaseLost
from orders.models import Checkout, Job, JobStatus
from orders.pipeline.context import PipelineContext
from orders.pipeline.failures import give_up
from orders.pipeline.holds import expired_hold_checkouts, release_expired
from orders.pipeline.jobs import JobRef, send_after_commit
from orders.pipeline.leases import Claim
from orders.pipeline.timeline import record_event

log = logging.getLogger(__name__)
BATCH = 500


@dataclass
class SweepReport:
    expired: int = 0
    gave_up: int = 0
    resent: int = 0
    holds_released: int = 0

    def __bool__(self) -> bool:
        return bool(self.expired or self.gave_up or self.resent or self.holds_released)


def sweep(session: Session, ctx: PipelineContext) -> SweepReport:
    """One round; every unit of it (a job, a checkout's holds) is its own transaction."""
    report = SweepReport()
    refs: list[JobRef] = []
    now = utcnow()
    expired = [
        Claim.of(job)
        for job in session.scalars(
            select(Job)
            .where(Job.status == JobStatus.ACTIVE, Job.lease_until < now)
            .order_by(Job.lease_until)
            .limit(BATCH)
        )
    ]
    session.rollback()  # a read: end it before writing job by job
    touched: set[int] = set()  # checkouts whose timeline changed: wake their streams
    for taken in expired:
        if taken.final:
            gave_up = _unit(session, partial(give_up, session, taken, ctx, _DIED))
            refs += gave_up or []
            report.gave_up += 1
        elif _unit(session, partial(_requeue_expired, session, taken)) is not None:
            refs.append(JobRef(taken.job_id, taken.type))
            report.expired += 1
        else:
            continue
        if taken.checkout_id is not None:
            touched.add(taken.checkout_id)
    resent = _unit(session, lambda: _resend_lost(session, ctx, now)) or []
    refs += resent
    report.resent += len(resent)
    for checkout_id in _unit(session, lambda: expired_hold_checkouts(session)) or []:
        refunds = _unit(session, partial(release_expired, session, ctx.settings, checkout_id))
        if refunds is not None:
            report.holds_released += 1
            refs += refunds
    send_after_commit(session, refs, ctx.dispatch)
    _publish_all(session, ctx, touched)
    if report:
        log.info(
            "sweep: %d lease(s) expired and re-driven, %d gave up, %d re-sent to the broker, "
            "%d checkout(s) with expired stock holds",
            report.expired,
            report.gave_up,
            report.resent,
            report.holds_released,
        )
    return report


_DIED = "lease expired: the worker died or hung"
T = TypeVar("T")


def _unit(session: Session, work: Callable[[], T]) -> T | None:
    """Run one unit of the sweep and commit it; None (nothing kept) if a lease was lost."""
    try:
        result = work()
    except LeaseLost:
        session.rollback()
        return None
    except BaseException:
        session.rollback()
        raise
    session.commit()
    return result


def _resend_lost(session: Session, ctx: PipelineContext, now: datetime) -> list[JobRef]:
    """Jobs the broker never got or lost: mark them sent again; their refs."""
    stale = now - timedelta(seconds=ctx.settings.requeue_after_seconds)
    lost = session.scalars(
        select(Job)
        .where(
            or_(
                and_(
                    Job.status.in_((JobStatus.QUEUED, JobStatus.SCHEDULED)),
                    Job.enqueued_at.is_(None),
                    or_(Job.run_at.is_(None), Job.run_at <= now),
                ),
                and_(Job.status == JobStatus.QUEUED, Job.enqueued_at < stale),
                and_(Job.status == JobStatus.SCHEDULED, Job.run_at < stale),
            )
        )
        .order_by(Job.created_at)
        .limit(BATCH)
        # rows another transaction holds (a batch closing its jobs, retention deleting
        # old ones) are skipped, not waited for: two multi-row statements locking rows
        # in different orders deadlocked (seen in a bench drain); the next round sees them
        .with_for_update(skip_locked=True)
    ).all()
    if lost:
        session.execute(
            update(Job)
            .where(Job.id.in_([job.id for job in lost]))
            .values(enqueued_at=now)
            .execution_options(synchronize_session=False)
        )
    return [JobRef(job.id, job.type) for job in lost]


def _publish_all(session: Session, ctx: PipelineContext, checkout_ids: set[int]) -> None:
    if not checkout_ids:
        return
    public_ids = session.scalars(
        select(Checkout.public_id).where(Checkout.id.in_(checkout_ids))
    ).all()
    session.rollback()  # a read
    for public_id in public_ids:
        try:
            ctx.publish(public_id)
        except Exception:  # a wake-up is best effort; streams also poll
            log.warning("could not publish progress for %s", public_id, exc_info=True)


def _requeue_expired(session: Session, taken: Claim) -> bool:
    result = session.execute(
        update(Job)
        .where(
            Job.id == taken.job_id,
            Job.status == JobStatus.ACTIVE,
            Job.attempts == taken.attempt,
        )
        .values(status=JobStatus.QUEUED, lease_until=None, enqueued_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if rowcount(result) != 1:
        raise LeaseLost(taken.job_id)
    if taken.checkout_id is not None:
        checkout = session.get(Checkout, taken.checkout_id)
        if checkout is not None:
            record_event(
                session,
                checkout,
                f"{taken.type} re-driven after lease expiry, "
                f"attempt {taken.attempt + 1}/{taken.max_attempts}",
            )
    return True
