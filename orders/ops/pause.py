"""Pause and resume a queue.

A paused queue's consumers leave its jobs waiting: before claiming, the task asks
:func:`job_is_paused` (one indexed query in the transaction the claim then uses) and
returns without claiming, so the job row stays ``queued``. The sweeper keeps
re-sending it while it waits; on resume every waiting job of the queue is sent again.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from orders.models import Job, QueuePause


def job_is_paused(session: Session, job_id: str) -> bool:
    """True when the job's queue is paused (opens, and leaves open, a transaction)."""
    paused = session.scalar(
        select(QueuePause.queue).join(Job, Job.queue == QueuePause.queue).where(Job.id == job_id)
    )
    return paused is not None


def paused_queues(session: Session) -> set[str]:
    return set(session.scalars(select(QueuePause.queue)))
