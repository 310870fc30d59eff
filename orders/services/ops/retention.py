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
from orders.jobtypes import QUEUES
from orders.models import Job, JobStatus

BATCH = 1000


def _sweep_group(session: Session, queue: str, statuses: tuple[JobStatus, ...], keep: int) -> int:
    deleted = 0
    while True:
        ids = list(
            session.scalars(
                select(Job.id)
                .where(Job.queue == queue, Job.status.in_(statuses))
                .order_by(Job.finished_at.desc(), Job.id.desc())
                .offset(max(keep, 0))
                .limit(BATCH)
            )
        )
        if not ids:
            session.commit()
            return deleted
        session.execute(
            delete(Job)
            .where(Job.id.in_(ids), Job.status.in_(statuses))
            .execution_options(synchronize_session=False)
        )
        session.commit()
        deleted += len(ids)


def sweep_job_records(session: Session, settings: Settings) -> int:
    """Delete the old terminal job rows beyond the allowances; returns how many. Commits."""
    deleted = 0
    for queue in QUEUES:
        deleted += _sweep_group(
            session, queue, (JobStatus.COMPLETED,), settings.keep_completed_jobs
        )
        deleted += _sweep_group(
            session, queue, (JobStatus.FAILED, JobStatus.DISCARDED), settings.keep_failed_jobs
        )
    return deleted
