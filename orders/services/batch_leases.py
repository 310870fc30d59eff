"""Leases on many job rows at once (the batch runner's): claim a set, close a set.

The same rules as :mod:`orders.services.leases`, one statement for the set: a claim
only takes waiting, due jobs, and a close only holds if every lease still does.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import exists, or_, select, text, tuple_, update
from sqlalchemy.orm import Session

from orders.db import utcnow
from orders.errors import LeaseLost
from orders.jobtypes import JOB_TYPES
from orders.models import JobStatus
from orders.models.tables import JOBS, QUEUE_PAUSES
from orders.models.work import WAITING_SQL
from orders.services.leases import CLAIM_COLUMNS, Claim
from orders.services.ops.stats import record_outcome

WAITING = (JobStatus.QUEUED, JobStatus.SCHEDULED)
_WAITING = text(f"jobs.{WAITING_SQL}")


def claim_batch(
    session: Session,
    job_type: str,
    job_ids: Sequence[str],
    worker: str,
    lease_seconds: int,
    limit: int,
    *,
    unless_paused: bool = False,
) -> list[Claim]:
    """Claim the waiting, due jobs among ``job_ids`` (a message's own) and up to
    ``limit`` more of ``job_type``, the oldest first (an index of the waiting jobs by
    type and age gives them without sorting the backlog), in the caller's transaction
    (it commits). A message takes its own job if it still waits and no other claim
    holds it, so every waiting job has a message coming that will take it.

    On PostgreSQL the rows are picked ``FOR UPDATE SKIP LOCKED``: two consumers
    claiming at once take different jobs instead of waiting on each other; the
    status check in the UPDATE keeps a job from being claimed twice either way.
    """
    now = utcnow()
    due = or_(JOBS.c.run_at.is_(None), JOBS.c.run_at <= now + timedelta(seconds=1))
    waiting = select(JOBS.c.id).where(
        JOBS.c.type == job_type,
        _WAITING,  # the partial index's own predicate, literally
        due,
    )
    picked = waiting.order_by(JOBS.c.created_at).limit(limit).with_for_update(skip_locked=True)
    # its own jobs SKIP LOCKED too: waiting on a row another claim holds, while holding
    # rows that claim wants, deadlocked two consumers (seen in PostgreSQL's log); a row
    # locked by another claim is being claimed by it
    own = (
        select(JOBS.c.id)
        .where(JOBS.c.id.in_(list(job_ids)), _WAITING, due)
        .with_for_update(skip_locked=True)
    )
    conditions = [
        or_(JOBS.c.id.in_(own.scalar_subquery()), JOBS.c.id.in_(picked.scalar_subquery())),
        JOBS.c.status.in_(WAITING),
        due,
    ]
    if unless_paused:
        queue = JOB_TYPES[job_type].queue
        conditions.append(~exists().where(QUEUE_PAUSES.c.queue == queue))
    rows = session.execute(
        update(JOBS)
        .where(*conditions)
        .values(
            status=JobStatus.ACTIVE,
            attempts=JOBS.c.attempts + 1,
            lease_until=now + timedelta(seconds=lease_seconds),
            started_at=now,
            worker=worker[:100],
        )
        .returning(*CLAIM_COLUMNS)
    ).all()
    return [Claim(*row) for row in rows]


def close_all(
    session: Session, jobs: Sequence[Claim], status: JobStatus, *, strict: bool = True
) -> list[Claim]:
    """Close every job of ``jobs`` in one UPDATE; returns the ones closed. ``strict``:
    :class:`LeaseLost` unless every lease still holds (the caller then rolls back:
    nothing was closed); else the jobs no longer ours are left out."""
    if not jobs:
        return []
    closed = session.execute(
        update(JOBS)
        .where(
            tuple_(JOBS.c.id, JOBS.c.attempts).in_([(job.job_id, job.attempt) for job in jobs]),
            JOBS.c.status == JobStatus.ACTIVE,
        )
        .values(status=status, finished_at=utcnow(), lease_until=None, run_at=None)
        .returning(JOBS.c.id)
    ).scalars()
    ours = set(closed)
    if strict and len(ours) != len(jobs):
        raise LeaseLost(f"{len(jobs) - len(ours)} of {len(jobs)} jobs are no longer ours")
    done = [job for job in jobs if job.job_id in ours]
    for job in done:
        record_outcome(session, job, status.value)  # ops counters, same txn
    return done
