"""Leases on job rows: claim jobs, then close or reschedule them under the lease.

Claiming is a conditional UPDATE, so a duplicate delivery of the same message does
nothing. Every close is conditional on the attempt we claimed: a worker whose lease
was taken over cannot write its result. One job or many, the same statements: the
common ones are built once per shape and their values are bound.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import (
    ClauseElement,
    ColumnElement,
    CompoundSelect,
    Executable,
    Integer,
    Select,
    TextClause,
    bindparam,
    exists,
    or_,
    select,
    text,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.orm import Session

from orders.db import rowcount, utcnow
from orders.errors import LeaseLost
from orders.models import Job, JobStatus
from orders.models.tables import JOBS, QUEUE_PAUSES
from orders.models.work import WAITING_SQL
from orders.pipeline.stats import record_outcome

_WAITING = text(f"jobs.{WAITING_SQL}")  # the partial index ix_jobs_waiting's predicate
# The same test in a form no index matches (the status concatenated with ''): for jobs
# found by id, the test of each row found, never a way to find them (see _claim_statement).
_STILL_WAITING = text(f"(jobs.status || '') IN {WAITING_SQL.removeprefix('status IN ')}")


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
    trace_context: str | None = None  # the trace its runs continue (orders.infra.tracing)

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
            job.trace_context,
        )


def claim(
    session: Session,
    job_ids: Sequence[str],
    worker: str,
    lease_seconds: int,
    *,
    job_type: str | None = None,
    extra: int = 0,
    unless_paused: bool = False,
) -> list[Claim]:
    """Take the waiting, due jobs among ``job_ids`` (a message's own) and up to
    ``extra`` more of ``job_type``, the oldest first; set a lease on each. In the
    caller's transaction (the runner commits it with the step's entry). With
    ``unless_paused`` the jobs of a queue an operator paused are left waiting.

    A duplicate delivery finds its job taken and claims nothing. On PostgreSQL the
    rows are picked ``FOR UPDATE SKIP LOCKED``: two consumers claiming at once take
    different jobs instead of waiting on each other (waiting on a row another claim
    holds, while holding rows that claim wants, deadlocked two consumers); the status
    check in the UPDATE keeps a job from being claimed twice either way.
    """
    session.connection()  # a busy pool can keep a claim waiting: the lease starts after
    now = utcnow()
    params = {
        "p_due": now + timedelta(seconds=1),
        "p_lease_until": now + timedelta(seconds=lease_seconds),
        "p_now": now,
        "p_worker": worker[:100],
    }
    one = extra < 1 and len(job_ids) == 1  # the common message: the simplest statement
    more = extra > 0 and job_type is not None
    ids = list(job_ids)
    if one:
        params["p_job_id"] = ids[0]
    else:
        params["p_job_ids"] = ids
    if more:
        params.update(p_type=job_type, p_extra=extra, p_not=ids)
    rows = session.execute(_claim_statement(one, more, unless_paused), params).all()
    return [Claim(*row) for row in rows]


_DUE = or_(JOBS.c.run_at.is_(None), JOBS.c.run_at <= bindparam("p_due"))


@cache
def _claim_statement(one: bool, more: bool, unless_paused: bool) -> Executable:
    """The claim, built once per shape with its values bound: of one job by id
    (``p_job_id``: every message's), or of a message's jobs (``p_job_ids``) and, with
    ``more``, up to ``p_extra`` other waiting ones of ``p_type``, the oldest first.

    A message's jobs are found by primary key, a batch's extra ones on the partial
    index of waiting jobs (each in a CTE: one statement, one list of ids). PostgreSQL
    chose otherwise, and scanned every waiting job per claim, so a backlog slowed its
    own drain (behind 4,000 checkouts, 33 ms a claim and two thirds of the database's
    time): it tested ``id IN (own) OR id IN (picked)`` row by row, and it took the
    waiting test for a way in through that partial index, whose statistics (analyzed
    when few jobs wait, as they mostly are) call it nearly empty. So the jobs found by
    id are tested with :data:`_STILL_WAITING`, which no index matches.
    """
    if one:
        chosen: ColumnElement[bool] = JOBS.c.id == bindparam("p_job_id")
    else:
        own = (
            select(JOBS.c.id)
            .where(JOBS.c.id.in_(bindparam("p_job_ids", expanding=True)), _STILL_WAITING, _DUE)
            .with_for_update(skip_locked=True)
            .cte("own")
        )
        ids: Select[tuple[str]] | CompoundSelect[tuple[str]] = select(own.c.id)
        if more:
            picked = (
                select(JOBS.c.id)
                .where(JOBS.c.type == bindparam("p_type"), _WAITING, _DUE)  # the partial index's
                .where(JOBS.c.id.not_in(bindparam("p_not", expanding=True)))  # not the message's
                .order_by(JOBS.c.created_at)
                .limit(bindparam("p_extra", type_=Integer))
                .with_for_update(skip_locked=True)
                .cte("picked")
            )
            ids = union_all(ids, select(picked.c.id))
        chosen = JOBS.c.id.in_(ids)
    conditions: list[ColumnElement[bool] | TextClause] = [chosen, _STILL_WAITING, _DUE]
    if unless_paused:
        conditions.append(~exists().where(QUEUE_PAUSES.c.queue == JOBS.c.queue))
    return _claiming(*conditions)


def _claiming(*conditions: ColumnElement[bool] | TextClause) -> Executable:
    return (
        update(JOBS)
        .where(*conditions)
        .values(
            status=JobStatus.ACTIVE,
            attempts=JOBS.c.attempts + 1,
            lease_until=bindparam("p_lease_until"),
            started_at=bindparam("p_now"),
            worker=bindparam("p_worker"),
        )
        .returning(*CLAIM_COLUMNS)
    )


# what a claim reads back from its UPDATE (RETURNING: nothing read again), in
# the order of Claim's fields
CLAIM_COLUMNS = tuple(
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
        "trace_context",
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
        **_failure(error, trace),
    }
    _guarded_update(session, job, values)
    record_outcome(session, job, status.value)  # ops counters, same txn


def close_all(session: Session, jobs: Sequence[Claim], status: JobStatus) -> list[Claim]:
    """:func:`close` for many jobs in one UPDATE; returns the ones still ours (closed)."""
    if len(jobs) == 1:
        try:
            close(session, jobs[0], status)
        except LeaseLost:
            return []
        return list(jobs)
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
    done = [job for job in jobs if job.job_id in ours]
    for job in done:
        record_outcome(session, job, status.value)  # ops counters, same txn
    return done


def reschedule(
    session: Session, job: Claim, delay: float, error: str, trace: str | None = None
) -> None:
    """Put the job back to run again in ``delay`` seconds, its attempt spent (our lease
    must still hold)."""
    _put_back(session, job, delay, _failure(error, trace))


def postpone(session: Session, job: Claim, delay: float, reason: str) -> None:
    """Put the job back to run in ``delay`` seconds, its attempt given back: it waited
    for something outside it (an open circuit), it did not fail."""
    _put_back(session, job, delay, {**_failure(reason, None), "attempts": _GIVE_BACK_ATTEMPT})


_GIVE_BACK_ATTEMPT = JOBS.c.attempts - 1  # one object: the statement cache keys on it


def _put_back(session: Session, job: Claim, delay: float, values: dict[str, object]) -> None:
    """Schedule our job ``delay`` seconds from now, with ``values`` (why, its attempts)."""
    now = utcnow()
    scheduled: dict[str, object] = {
        "status": JobStatus.SCHEDULED,
        "run_at": now + timedelta(seconds=delay),
        "lease_until": None,
        "enqueued_at": now,
    }
    _guarded_update(session, job, {**scheduled, **values})
    record_outcome(session, job, "retried")  # ops counters, same txn


def _failure(error: str | None, trace: str | None) -> dict[str, object]:
    """A failure's message and traceback, cut to fit their columns."""
    values: dict[str, object] = {}
    if error is not None:
        values["last_error"] = error[:500]
    if trace is not None:
        values["traceback"] = trace[-20000:]
    return values


def _guarded_update(session: Session, job: Claim, values: dict[str, object]) -> None:
    """Write ``values`` (plain values, or the ``attempts`` expression) to our job row."""
    bound = {name: value for name, value in values.items() if not isinstance(value, ClauseElement)}
    fixed = tuple((name, value) for name, value in values.items() if name not in bound)
    params = {f"p_{name}": value for name, value in bound.items()}
    params.update(p_job_id=job.job_id, p_attempt=job.attempt)
    result = session.execute(_guarded_statement(tuple(bound), fixed), params)
    if rowcount(result) != 1:
        raise LeaseLost(f"job {job.job_id} is no longer ours (attempt {job.attempt})")


@cache
def _guarded_statement(
    bound: tuple[str, ...], fixed: tuple[tuple[str, ClauseElement], ...]
) -> Executable:
    """One UPDATE per shape of values (a close, a close with its error, ...)."""
    changes: dict[str, Any] = {name: bindparam(f"p_{name}") for name in bound}
    changes.update(fixed)
    return (
        update(JOBS)
        .where(
            JOBS.c.id == bindparam("p_job_id"),
            JOBS.c.status == JobStatus.ACTIVE,
            JOBS.c.attempts == bindparam("p_attempt"),
        )
        .values(changes)
    )
