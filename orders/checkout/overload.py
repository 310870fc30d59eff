"""The overload policy for ``POST /api/checkout`` (``OVERLOAD_POLICY``).

"Overloaded" means, concretely: the queue broker is unreachable, or more than
``OVERLOAD_QUEUE_DEPTH`` jobs are waiting in the database (``queued`` or
``scheduled``). What happens then:

- ``accept`` (default): record the checkout and answer 202 anyway; the job rows are
  the queue, and the sweeper sends them once the broker is back.
- ``shed``: refuse with 503 and ``Retry-After`` (nothing is recorded).
- ``sync``: record the checkout and run its steps inline, in the request (the same
  runner and steps as the workers); the confirmation email is left to the queue.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from orders.config import Settings
from orders.db import engine_of
from orders.models import Job, JobStatus
from orders.pipeline.context import PipelineContext
from orders.pipeline.inline import run_inline
from orders.pipeline.jobs import JobRef, send_after_commit
from orders.pipeline.jobtypes import JOB_TYPES, NOTIFICATIONS

INLINE_TYPES = frozenset(name for name, kind in JOB_TYPES.items() if kind.queue != NOTIFICATIONS)


def waiting_jobs(session: Session) -> int:
    """Jobs waiting in the database, read on a connection of its own (the request's
    transaction is not held open by the probe)."""
    with engine_of(session).connect() as connection:
        count = connection.scalar(
            select(func.count(Job.id)).where(
                Job.status.in_((JobStatus.QUEUED, JobStatus.SCHEDULED))
            )
        )
    return int(count or 0)


def overload_reason(
    session: Session, settings: Settings, broker_reachable: Callable[[], bool]
) -> str | None:
    """Why we are overloaded right now, or None."""
    if not broker_reachable():
        return "the job queue is unreachable"
    waiting = waiting_jobs(session)
    if waiting > settings.overload_queue_depth:
        return f"{waiting} jobs are waiting (limit {settings.overload_queue_depth})"
    return None


def process_inline(
    sessions: sessionmaker[Session], ctx: PipelineContext, refs: Sequence[JobRef]
) -> None:
    """Run a checkout's steps here; hand the rest (the email) to the queue."""
    leftover = run_inline(sessions, ctx, refs, include=INLINE_TYPES)
    with sessions() as session:
        send_after_commit(session, leftover, ctx.dispatch)
