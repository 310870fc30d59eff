"""Operator actions on jobs, checkouts, queues and the breaker. Each one is audited.

Each function does its writes and audits, then ends through :func:`_done`: one commit,
then any job goes to the broker.
Refusals raise :class:`ActionRefused` with a message for the operator.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from orders.config import Settings
from orders.db import utcnow
from orders.domain.states import TERMINAL
from orders.errors import ShopError
from orders.models import Checkout, Job, JobStatus, QueuePause
from orders.ops.audit import audit
from orders.ops.breaker_state import reset_breaker
from orders.pipeline.jobs import Dispatch, JobRef, send_after_commit
from orders.pipeline.jobtypes import JOB_TYPES, QUEUES
from orders.pipeline.timeline import record_event

RETRYABLE = (JobStatus.FAILED, JobStatus.DISCARDED)
DISCARDABLE = (JobStatus.FAILED, JobStatus.QUEUED, JobStatus.SCHEDULED)


class ActionRefused(ShopError, code="action_refused", status=409, title="Action refused"): ...


@dataclass(frozen=True)
class Operator:
    name: str
    ip: str = ""


def _done(session: Session, refs: Sequence[JobRef] = (), dispatch: Dispatch | None = None) -> None:
    """End an action: its writes and its audit row commit together, then its jobs go to
    the broker (the one commit of every action)."""
    session.commit()
    if refs and dispatch is not None:
        send_after_commit(session, refs, dispatch)


def _job(session: Session, job_id: str) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise ActionRefused(f"no job {job_id}")
    return job


def _checkout_of(session: Session, job: Job) -> Checkout | None:
    return session.get(Checkout, job.checkout_id) if job.checkout_id else None


def _check_retry(session: Session, job: Job) -> None:
    if job.status not in RETRYABLE:
        raise ActionRefused(f"job {job.id} is {job.status.value}; only failed jobs are retried")
    checkout = _checkout_of(session, job)
    if JOB_TYPES[job.type].stage is not None and checkout and checkout.stage in TERMINAL:
        raise ActionRefused(
            f"job {job.id} ({job.type}) belongs to checkout {checkout.public_id}, which already "
            f"ended {checkout.stage.value}; retrying its step cannot change that"
        )


def _requeue(session: Session, job: Job) -> None:
    now = utcnow()
    session.execute(
        update(Job)
        .where(Job.id == job.id, Job.status.in_(RETRYABLE))
        .values(
            status=JobStatus.SCHEDULED,  # due now: "waiting since now"
            run_at=now,
            attempts=0,
            lease_until=None,
            finished_at=None,
            enqueued_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    checkout = _checkout_of(session, job)
    if checkout is not None:
        record_event(session, checkout, f"{job.type} retried by an operator")


def retry_job(session: Session, job_id: str, who: Operator, dispatch: Dispatch) -> Job:
    job = _job(session, job_id)
    _check_retry(session, job)
    _requeue(session, job)
    audit(session, who.name, "retry_job", job.id, job.type, who.ip)
    _done(session, [JobRef(job.id, job.type)], dispatch)
    return job


def _check_discard(session: Session, job: Job) -> None:
    if job.status not in DISCARDABLE:
        raise ActionRefused(f"job {job.id} is {job.status.value}; it cannot be discarded")
    checkout = _checkout_of(session, job)
    live_step = JOB_TYPES[job.type].stage is not None and job.status is not JobStatus.FAILED
    if live_step and checkout is not None and checkout.stage not in TERMINAL:
        raise ActionRefused(
            f"job {job.id} is the live step of checkout {checkout.public_id}; "
            "discarding it would strand the checkout"
        )


def discard_job(session: Session, job_id: str, who: Operator) -> Job:
    job = _job(session, job_id)
    _check_discard(session, job)
    session.execute(
        update(Job)
        .where(Job.id == job.id, Job.status.in_(DISCARDABLE))
        .values(status=JobStatus.DISCARDED, finished_at=utcnow(), lease_until=None)
        .execution_options(synchronize_session=False)
    )
    audit(session, who.name, "discard_job", job.id, job.type, who.ip)
    _done(session)
    return job


@dataclass
class BulkResult:
    done: list[str]
    refused: dict[str, str]


def bulk(
    session: Session,
    action: str,
    job_ids: list[str],
    who: Operator,
    dispatch: Dispatch,
    *,
    queue: str | None = None,
) -> BulkResult:
    """Retry or discard many failed jobs (the given ids, or every failed job of ``queue``)."""
    if action not in ("retry", "discard"):
        raise ActionRefused(f"unknown bulk action {action!r}")
    if queue is not None:
        if queue not in QUEUES:
            raise ActionRefused(f"unknown queue {queue!r}")
        job_ids = list(
            session.scalars(
                select(Job.id).where(Job.queue == queue, Job.status == JobStatus.FAILED)
            )
        )
    result = BulkResult([], {})
    refs: list[JobRef] = []
    for job_id in job_ids[:1000]:
        try:
            job = _job(session, job_id)
            if job.status is not JobStatus.FAILED:
                raise ActionRefused(f"job {job.id} is {job.status.value}, not failed")
            if action == "retry":
                _check_retry(session, job)
                _requeue(session, job)
                refs.append(JobRef(job.id, job.type))
            else:
                _check_discard(session, job)
                session.execute(
                    update(Job)
                    .where(Job.id == job.id, Job.status == JobStatus.FAILED)
                    .values(status=JobStatus.DISCARDED, finished_at=utcnow())
                    .execution_options(synchronize_session=False)
                )
            result.done.append(job_id)
        except ActionRefused as exc:
            result.refused[job_id] = exc.message
    detail = f"{len(result.done)} done, {len(result.refused)} refused"
    audit(session, who.name, f"bulk_{action}", queue or ",".join(result.done)[:200], detail, who.ip)
    _done(session, refs, dispatch)
    return result


def redrive_checkout(
    session: Session, public_id: str, who: Operator, dispatch: Dispatch
) -> list[str]:
    """Send a stuck checkout's live jobs again; an active one is handed to the sweeper."""
    checkout = session.scalar(select(Checkout).where(Checkout.public_id == public_id))
    if checkout is None:
        raise ActionRefused(f"no checkout {public_id}")
    if checkout.stage in TERMINAL:
        raise ActionRefused(f"checkout {public_id} already ended {checkout.stage.value}")
    live = list(
        session.scalars(
            select(Job).where(
                Job.checkout_id == checkout.id,
                Job.status.in_((JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.ACTIVE)),
            )
        )
    )
    if not live:
        raise ActionRefused(
            f"checkout {public_id} has no live job to re-drive; retry its failed job instead"
        )
    now = utcnow()
    refs: list[JobRef] = []
    for job in live:
        if job.status is JobStatus.ACTIVE:  # expire the lease: the sweeper re-drives it
            values: dict[str, object] = {"lease_until": now}
        else:
            values = {"run_at": None, "enqueued_at": now}
            refs.append(JobRef(job.id, job.type))
        session.execute(
            update(Job)
            .where(Job.id == job.id, Job.status == job.status)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
    record_event(session, checkout, "Re-driven by an operator")
    ids = [job.id for job in live]
    audit(session, who.name, "redrive_checkout", public_id, ",".join(ids), who.ip)
    _done(session, refs, dispatch)
    return ids


def pause_queue(session: Session, queue: str, who: Operator) -> None:
    if queue not in QUEUES:
        raise ActionRefused(f"unknown queue {queue!r}")
    if session.get(QueuePause, queue) is None:
        session.add(QueuePause(queue=queue, paused_by=who.name[:100], paused_at=utcnow()))
    audit(session, who.name, "pause_queue", queue, "", who.ip)
    _done(session)


def resume_queue(session: Session, queue: str, who: Operator, dispatch: Dispatch) -> int:
    """Lift the pause and send every waiting job of the queue again; returns how many."""
    if queue not in QUEUES:
        raise ActionRefused(f"unknown queue {queue!r}")
    session.execute(delete(QueuePause).where(QueuePause.queue == queue))
    waiting = list(
        session.scalars(
            select(Job).where(
                Job.queue == queue, Job.status.in_((JobStatus.QUEUED, JobStatus.SCHEDULED))
            )
        )
    )
    now = utcnow()
    refs = [
        JobRef(job.id, job.type, max((job.run_at - now).total_seconds(), 0.0) if job.run_at else 0)
        for job in waiting
    ]
    audit(session, who.name, "resume_queue", queue, f"{len(refs)} job(s) re-sent", who.ip)
    _done(session, refs, dispatch)
    return len(refs)


def reset_circuit_breaker(session: Session, settings: Settings, who: Operator) -> bool:
    done = reset_breaker(settings)
    detail = "state set to closed" if done else "no shared breaker state (no Redis)"
    audit(session, who.name, "reset_breaker", "payment-gateway", detail, who.ip)
    _done(session)
    return done
