"""Durable job rows: create, claim with a lease, close under the lease, reschedule.

A job row is committed in the same transaction as the state it acts on; only then
is a Huey message sent (:func:`send_after_commit`). Claiming is a conditional
UPDATE, so a duplicate delivery of the same message does nothing. Every close is
conditional on the attempt we claimed: a worker whose lease was taken over cannot
write its result.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, insert, or_, update
from sqlalchemy.orm import Session

from orders.config import Settings
from orders.db import utcnow
from orders.errors import LeaseLost
from orders.jobtypes import JOB_TYPES, JobType
from orders.models import Checkout, Job, JobStatus
from orders.models.tables import JOBS, QUEUE_PAUSES
from orders.services.ops.stats import record_outcome

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobRef:
    """What the broker needs to deliver a job (plain data, safe after commit)."""

    id: str
    type: str
    delay: float = 0.0


@dataclass(frozen=True)
class Claim:
    """A job we hold the lease on, as plain data captured when we claimed it.

    ``attempt`` is the lease token: every write we make is conditional on it, and
    ORM instances (which a rollback expires and reloads) are never trusted for it.
    """

    job_id: str
    type: str
    attempt: int
    max_attempts: int
    checkout_id: int | None
    cart_id: str | None
    email_id: int | None
    payment_id: int | None
    started_at: datetime | None = None

    @property
    def final(self) -> bool:
        return self.attempt >= self.max_attempts

    @classmethod
    def of(cls, job: Job) -> Claim:
        """The claim a job row stands for now (its current attempt is the lease token)."""
        return cls(
            job.id,
            job.type,
            job.attempts,
            job.max_attempts,
            job.checkout_id,
            job.cart_id,
            job.email_id,
            job.payment_id,
            job.started_at,
        )


Dispatch = Callable[[Sequence[JobRef]], list[str]]
"""Send refs to the broker; return the ids that could not be sent."""


def ref(job: Job, delay: float = 0.0) -> JobRef:
    return JobRef(job.id, job.type, delay)


def new_job(
    session: Session,
    settings: Settings,
    job_type: JobType,
    *,
    checkout: Checkout | None = None,
    cart_id: str | None = None,
    email_id: int | None = None,
    payment_id: int | None = None,
) -> Job:
    """Insert a queued job row in the session's transaction (the caller commits, then
    dispatches). Returns the row as a detached object (its id and type name the message).
    """
    values = job_row(
        settings,
        job_type,
        checkout_id=checkout.id if checkout else None,
        cart_id=cart_id,
        email_id=email_id,
        payment_id=payment_id,
    )
    session.execute(insert(JOBS), values)
    return Job(**values)


def job_row(
    settings: Settings,
    job_type: JobType,
    *,
    checkout_id: int | None = None,
    cart_id: str | None = None,
    email_id: int | None = None,
    payment_id: int | None = None,
) -> dict[str, Any]:
    """The row of a new queued job."""
    now = utcnow()
    return {
        "id": uuid.uuid4().hex,
        "type": job_type.name,
        "queue": job_type.queue,
        "priority": job_type.huey_priority,
        "status": JobStatus.QUEUED,
        "checkout_id": checkout_id,
        "cart_id": cart_id,
        "email_id": email_id,
        "payment_id": payment_id,
        "attempts": 0,
        "max_attempts": settings.max_attempts,
        "created_at": now,
        "enqueued_at": now,
    }


def claim(
    session: Session,
    job_id: str,
    worker: str,
    lease_seconds: int,
    *,
    commit: bool = True,
    unless_paused: bool = False,
) -> Claim | None:
    """Take the job if it is waiting (and due); set a lease. None if not ours.

    Commits unless ``commit`` is False: the runner then writes the checkout's step
    entry in the same transaction (one commit per claim instead of two). With
    ``unless_paused`` a job whose queue an operator paused is left waiting (checked in
    the same statement).
    """
    now = utcnow()
    conditions = [
        JOBS.c.id == job_id,
        JOBS.c.status.in_((JobStatus.QUEUED, JobStatus.SCHEDULED)),
        or_(JOBS.c.run_at.is_(None), JOBS.c.run_at <= now + timedelta(seconds=1)),
    ]
    if unless_paused:
        conditions.append(~exists().where(QUEUE_PAUSES.c.queue == JOBS.c.queue))
    row = session.execute(
        update(JOBS)
        .where(*conditions)
        .values(
            status=JobStatus.ACTIVE,
            attempts=JOBS.c.attempts + 1,
            lease_until=now + timedelta(seconds=lease_seconds),
            started_at=now,
            worker=worker[:100],
        )
        .returning(*_CLAIM_COLUMNS)
    ).first()
    if row is None:
        session.rollback()
        return None
    taken = Claim(*row)
    if commit:
        session.commit()
    return taken


# what a claim reads back from its UPDATE (RETURNING: no second round trip), in
# the order of Claim's fields
_CLAIM_COLUMNS = tuple(
    JOBS.c[name]
    for name in (
        "id",
        "type",
        "attempts",
        "max_attempts",
        "checkout_id",
        "cart_id",
        "email_id",
        "payment_id",
        "started_at",
    )
)


def close(
    session: Session,
    job: Claim,
    status: JobStatus,
    error: str | None = None,
    trace: str | None = None,
) -> None:
    """Mark the job finished, only if our lease still holds (else :class:`LeaseLost`)."""
    values: dict[str, object] = {
        "status": status,
        "finished_at": utcnow(),
        "lease_until": None,
        "run_at": None,
    }
    if error is not None:
        values["last_error"] = error[:500]
    if trace is not None:
        values["traceback"] = trace[-20000:]
    _guarded_update(session, job, values)
    record_outcome(session, job, status.value)  # ops counters, same txn


def reschedule(
    session: Session,
    job: Claim,
    delay: float,
    error: str,
    *,
    count_attempt: bool = True,
    trace: str | None = None,
) -> None:
    """Put the job back to wait ``delay`` seconds (our lease must still hold)."""
    values: dict[str, object] = {
        "status": JobStatus.SCHEDULED,
        "run_at": utcnow() + timedelta(seconds=delay),
        "lease_until": None,
        "enqueued_at": utcnow(),
        "last_error": error[:500],
    }
    if trace is not None:
        values["traceback"] = trace[-20000:]
    if not count_attempt:
        values["attempts"] = JOBS.c.attempts - 1
    _guarded_update(session, job, values)
    record_outcome(session, job, "retried")  # ops counters, same txn


def _guarded_update(session: Session, job: Claim, values: dict[str, object]) -> None:
    result = session.execute(
        update(JOBS)
        .where(
            JOBS.c.id == job.job_id,
            JOBS.c.status == JobStatus.ACTIVE,
            JOBS.c.attempts == job.attempt,
        )
        .values(**values)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise LeaseLost(f"job {job.job_id} is no longer ours (attempt {job.attempt})")


def backoff_delay(settings: Settings, attempts: int) -> float:
    """Seed policy: exponential backoff from ``retry_delay`` (2 s, 4 s, 8 s, ...)."""
    return float(settings.retry_delay_seconds * settings.retry_backoff ** max(attempts - 1, 0))


def job_type(job: Job | Claim) -> JobType:
    return JOB_TYPES[job.type]


def send_after_commit(session: Session, refs: Sequence[JobRef], dispatch: Dispatch) -> None:
    """Hand committed jobs to the broker. If it is down, say so in the rows.

    A job whose message could not be sent keeps ``enqueued_at = NULL``; the sweeper
    sends it once the broker is back. Nothing is lost either way: the row is the record.
    """
    if not refs:
        return
    try:
        failed = dispatch(refs)
    except Exception:  # the broker client raised before sending anything
        log.exception("could not enqueue %d job(s); the sweeper will re-drive them", len(refs))
        failed = [r.id for r in refs]
    if failed:
        session.execute(
            update(Job)
            .where(Job.id.in_(failed), Job.status.in_((JobStatus.QUEUED, JobStatus.SCHEDULED)))
            .values(enqueued_at=None)
            .execution_options(synchronize_session=False)
        )
        session.commit()
