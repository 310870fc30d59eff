"""Durable job rows: create them, and hand them to the broker after commit.

A job row is committed in the same transaction as the state it acts on; only then
is a Huey message sent (:func:`send_after_commit`). Claiming and closing under a
lease: :mod:`orders.pipeline.leases`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypedDict, Unpack

from sqlalchemy import insert, update
from sqlalchemy.orm import Session

from orders.config import Settings
from orders.db import engine_of, utcnow
from orders.infra.bulk import insert_rows
from orders.infra.combiner import Combiner
from orders.infra.tracing import context_for_new_job
from orders.models import Checkout, JobStatus
from orders.models.tables import JOBS
from orders.pipeline.jobtypes import JOB_TYPES, JobType

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobRef:
    """What the broker needs to deliver a job (plain data, safe after commit)."""

    id: str
    type: str
    delay: float = 0.0


Dispatch = Callable[[Sequence[JobRef]], list[str]]
"""Send refs to the broker; return the ids that could not be sent."""


def shared_dispatch(dispatch: Dispatch, limit: int = 500) -> Dispatch:
    """``dispatch`` for many callers at once (a web process's requests): refs handed
    over while a send is under way go together in the next one
    (:class:`~orders.infra.combiner.Combiner`), so under load one broker round trip
    carries many requests' jobs, and jobs of a type that batches share its messages
    (the first job of every checkout placed meanwhile: one message, not one each).
    Each caller gets the ids of its own refs that were not sent; if the send raises,
    every caller of it does."""
    sends: Combiner[Sequence[JobRef], list[str]] = Combiner(
        partial(_send_together, dispatch), limit
    )
    return sends.submit


def _send_together(dispatch: Dispatch, asked: Sequence[Sequence[JobRef]]) -> list[list[str]]:
    failed = set(dispatch([ref for refs in asked for ref in refs]))
    return [[ref.id for ref in refs if ref.id in failed] for refs in asked]


class JobLinks(TypedDict, total=False):
    """The rows besides its checkout that a job acts on (a column left out is None)."""

    cart_id: str | None
    email_id: int | None
    payment_id: int | None


def new_job(
    session: Session,
    settings: Settings,
    job_type: JobType,
    *,
    checkout: Checkout | None = None,
    **links: Unpack[JobLinks],
) -> JobRef:
    """Insert a queued job row in the session's transaction (the caller commits, then
    dispatches). Returns what names its message: the row's id and type.
    """
    values = job_row(
        settings,
        job_type,
        checkout_id=checkout.id if checkout else None,
        trace_context=context_for_new_job(
            checkout.trace_context if checkout else None, job_type.name
        ),
        **links,
    )
    session.execute(insert(JOBS), values)
    return JobRef(values["id"], values["type"])


def next_jobs(
    session: Session,
    settings: Settings,
    job_type: str,
    checkouts: Sequence[Checkout],
    email_ids: Sequence[int] | None = None,
) -> list[JobRef]:
    """The job that follows ``job_type`` (the table's ``follow_up``) for each checkout
    (``email_ids``: one each), in one INSERT; what the broker is sent once it commits."""
    follow_up = JOB_TYPES[job_type].follow_up
    assert follow_up is not None, f"{job_type} has no follow-up job"
    rows = [
        job_row(
            settings,
            JOB_TYPES[follow_up],
            checkout_id=checkout.id,
            email_id=email_ids[index] if email_ids is not None else None,
            trace_context=checkout.trace_context,  # tracing: the checkout's trace
        )
        for index, checkout in enumerate(checkouts)
    ]
    insert_rows(session, JOBS, rows)
    return [JobRef(row["id"], row["type"]) for row in rows]


def job_row(
    settings: Settings,
    job_type: JobType,
    *,
    checkout_id: int | None = None,
    trace_context: str | None = None,
    **links: Unpack[JobLinks],
) -> dict[str, Any]:
    """The row of a new queued job (``trace_context``: the trace its runs continue)."""
    now = utcnow()
    return {
        "id": uuid.uuid4().hex,
        "type": job_type.name,
        "queue": job_type.queue,
        "priority": job_type.huey_priority,
        "status": JobStatus.QUEUED,
        "checkout_id": checkout_id,
        "cart_id": links.get("cart_id"),
        "email_id": links.get("email_id"),
        "payment_id": links.get("payment_id"),
        "attempts": 0,
        "max_attempts": job_type.max_attempts(settings),
        "created_at": now,
        "enqueued_at": now,
        "trace_context": trace_context,
    }


_WAITING = (JobStatus.QUEUED, JobStatus.SCHEDULED)


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
    if failed:  # a unit of its own: the caller's work is committed already
        with engine_of(session).connect() as connection, connection.begin():
            connection.execute(
                update(JOBS)
                .where(JOBS.c.id.in_(failed), JOBS.c.status.in_(_WAITING))
                .values(enqueued_at=None)
            )
