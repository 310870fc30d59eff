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
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from orders.db import utcnow
from orders.errors import LeaseLost
from orders.models import Checkout, Job, JobStatus
from orders.services.context import PipelineContext
from orders.services.holds import release_expired_holds
from orders.services.jobs import JobRef, ref, send_after_commit
from orders.services.leases import Claim
from orders.services.runner import give_up
from orders.services.timeline import record_event

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
    report = SweepReport()
    refs: list[JobRef] = []
    now = utcnow()
    expired = session.scalars(
        select(Job)
        .where(Job.status == JobStatus.ACTIVE, Job.lease_until < now)
        .order_by(Job.lease_until)
        .limit(BATCH)
    ).all()
    session.commit()
    touched: set[int] = set()  # checkouts whose timeline changed: wake their streams
    for job in expired:
        taken = Claim.of(job)
        if taken.final:
            refs += give_up(session, taken, ctx, "lease expired: the worker died or hung")
            report.gave_up += 1
        else:
            try:
                _requeue_expired(session, taken)
                session.commit()
            except LeaseLost:
                session.rollback()
                continue
            refs.append(JobRef(job.id, job.type))
            report.expired += 1
        if job.checkout_id is not None:
            touched.add(job.checkout_id)

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
        session.commit()
        refs += [JobRef(job.id, job.type) for job in lost]
        report.resent += len(lost)
    report.holds_released, refunds = release_expired_holds(session, ctx.settings)
    refs += [ref(job) for job in refunds]
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


def _publish_all(session: Session, ctx: PipelineContext, checkout_ids: set[int]) -> None:
    if not checkout_ids:
        return
    public_ids = session.scalars(
        select(Checkout.public_id).where(Checkout.id.in_(checkout_ids))
    ).all()
    session.commit()
    for public_id in public_ids:
        try:
            ctx.publish(public_id)
        except Exception:  # a wake-up is best effort; streams also poll
            log.warning("could not publish progress for %s", public_id, exc_info=True)


def _requeue_expired(session: Session, taken: Claim) -> None:
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
    if result.rowcount != 1:  # type: ignore[attr-defined]
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
