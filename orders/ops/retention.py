"""Retention: keep the newest N completed and M failed job records per queue.

Only terminal job rows are deleted (``completed``; ``failed`` and ``discarded`` share
the failed allowance). Orders, checkouts, their timelines and emails are never
touched, and the per-minute counters (``job_stats_minutely``) are separate rows, so
metrics and charts do not change when old job records go.
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from orders.config import Settings
from orders.models import Job, JobStatus
from orders.pipeline.jobtypes import QUEUES

BATCH = 1000


def delete_old_job_records(session: Session, settings: Settings) -> int:
    """Delete one batch (``BATCH`` per queue and group, at most) of the old terminal job
    rows beyond the allowances, in the caller's transaction; how many. The caller
    commits and calls again until it returns 0 (short transactions)."""
    deleted = 0
    for queue in QUEUES:
        deleted += _delete_beyond(
            session, queue, (JobStatus.COMPLETED,), settings.keep_completed_jobs
        )
        failed = (JobStatus.FAILED, JobStatus.DISCARDED)
        deleted += _delete_beyond(session, queue, failed, settings.keep_failed_jobs)
    return deleted


def _delete_beyond(session: Session, queue: str, statuses: tuple[JobStatus, ...], keep: int) -> int:
    ids = list(
        session.scalars(
            select(Job.id)
            .where(Job.queue == queue, Job.status.in_(statuses))
            .order_by(Job.finished_at.desc(), Job.id.desc())
            .offset(max(keep, 0))
            .limit(BATCH)
        )
    )
    if ids:
        session.execute(
            delete(Job)
            .where(Job.id.in_(ids), Job.status.in_(statuses))
            .execution_options(synchronize_session=False)
        )
    return len(ids)
