"""Per-minute counters: written when a job attempt or a checkout ends, read for charts
and metrics (all-time reads through :mod:`orders.ops.folds`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Table, event, func, select
from sqlalchemy.orm import Session

from orders.db import utcnow
from orders.domain.latency import bucket_index, quantile_ms
from orders.infra.upsert import upsert
from orders.models import JobStatMinute
from orders.models.ops import BUCKET_COLUMNS, LATENCY_BUCKETS_MS
from orders.pipeline import folds
from orders.pipeline.jobtypes import JOB_TYPES

OUTCOMES = ("completed", "failed", "discarded", "retried")


class Attempt(Protocol):
    """What a finished attempt needs to be counted (a :class:`~orders.pipeline.leases.Claim`)."""

    @property
    def job_id(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def started_at(self) -> datetime | None: ...


_PENDING = "job_stat_rows"  # session.info key: this transaction's counts, not yet written


def record_outcome(session: Session, job: Attempt, outcome: str) -> None:
    """Count one finished attempt of ``job`` in the caller's transaction.

    The row is written just before that transaction commits (and dropped if it rolls
    back): the counter row is shared by every job of its type in that minute, so
    writing it last keeps its row lock for the shortest time.
    """
    now = utcnow()
    started = job.started_at
    duration_ms = max((now - started).total_seconds() * 1000, 0.0) if started else 0.0
    queue = JOB_TYPES[job.type].queue if job.type in JOB_TYPES else "unknown"
    _count(session, folds.JOB_STATS, now, (queue, job.type, outcome), duration_ms)


def record_checkout_end(
    session: Session, placed_at: datetime, outcome: str, code: str | None, ended_at: datetime
) -> None:
    """Count a checkout that ended (``completed``/``failed``, with its error code) or was
    sent back to the queue from failed (``requeued``, with the code it leaves), in the
    caller's transaction, with its placed-to-ended time."""
    duration_ms = max((ended_at - placed_at).total_seconds() * 1000, 0.0)
    _count(session, folds.CHECKOUT_STATS, ended_at, (outcome, code or ""), duration_ms)


def _count(
    session: Session, source: folds.Source, now: datetime, key: tuple[str, ...], ms: float
) -> None:
    minute = now.replace(second=0, microsecond=0)
    pending: dict[tuple[Any, ...], dict[str, Any]] = session.info.setdefault(_PENDING, {})
    row = pending.setdefault(
        (source.name, minute, *key),
        {
            "minute": minute,
            **dict(zip(source.keys, key, strict=True)),
            "count": 0,
            "total_ms": 0,
            **dict.fromkeys(BUCKET_COLUMNS, 0),
        },
    )
    row["count"] += 1
    row["total_ms"] += int(ms)
    row[BUCKET_COLUMNS[bucket_index(LATENCY_BUCKETS_MS, ms)]] += 1


_SOURCES: dict[str, folds.Source] = {source.name: source for source in folds.SOURCES}


@event.listens_for(Session, "before_commit")
def _write_pending(session: Session) -> None:
    pending = session.info.pop(_PENDING, None)
    # in key order: two transactions lock shared counter rows in the same order
    for key, values in sorted((pending or {}).items()):
        source = _SOURCES[key[0]]
        table: Table = source.minutely
        upsert(
            session,
            table,
            values,
            ("minute", *source.keys),
            add=("count", "total_ms", *BUCKET_COLUMNS),
        )


@event.listens_for(Session, "after_soft_rollback")
def _drop_pending(session: Session, _previous: Any) -> None:
    session.info.pop(_PENDING, None)


@dataclass
class Totals:
    count: int = 0
    total_ms: int = 0
    buckets: list[int] = field(default_factory=lambda: [0] * len(BUCKET_COLUMNS))

    def add(self, row: Any) -> None:
        self.count += row.count
        self.total_ms += row.total_ms
        for index, name in enumerate(BUCKET_COLUMNS):
            self.buckets[index] += getattr(row, name)

    def merge(self, other: Totals) -> None:
        self.count += other.count
        self.total_ms += other.total_ms
        self.buckets = [a + b for a, b in zip(self.buckets, other.buckets, strict=True)]

    def quantile(self, q: float) -> float | None:
        return quantile_ms(LATENCY_BUCKETS_MS, self.buckets, q)


def _sums(
    session: Session, source: folds.Source, since: datetime | None, group: Sequence[str]
) -> dict[tuple[str, ...], Totals]:
    """``group`` values -> totals, over all time (folded) or since ``since`` (minute rows)."""
    if since is None:
        rows = folds.all_time(session, source, group)
    else:
        table = source.minutely
        columns = [func.sum(table.c[name]).label(name) for name in folds.VALUE_COLUMNS]
        keys = [table.c[name] for name in group]
        query = select(*keys, *columns).where(table.c.minute >= since).group_by(*keys)
        rows = list(session.execute(query))
    result: dict[tuple[str, ...], Totals] = {}
    for row in rows:
        totals = Totals()
        totals.add(row)
        result[tuple(getattr(row, name) for name in group)] = totals
    return result


def totals_by(
    session: Session, since: datetime | None = None
) -> dict[tuple[str, str, str], Totals]:
    """(queue, type, outcome) -> totals, over all time or since ``since``."""
    sums = _sums(session, folds.JOB_STATS, since, ("queue", "type", "outcome"))
    return {(queue, job_type, outcome): t for (queue, job_type, outcome), t in sums.items()}


def queue_totals(session: Session, since: datetime | None = None) -> dict[str, dict[str, Totals]]:
    """queue -> outcome -> totals."""
    result: dict[str, dict[str, Totals]] = defaultdict(dict)
    for (queue, outcome), totals in _sums(
        session, folds.JOB_STATS, since, ("queue", "outcome")
    ).items():
        result[queue][outcome] = totals
    return result


def checkout_totals(
    session: Session, since: datetime | None = None
) -> dict[tuple[str, str], Totals]:
    """(outcome, code) -> totals of ended checkouts, over all time or since ``since``."""
    sums = _sums(session, folds.CHECKOUT_STATS, since, ("outcome", "code"))
    return {(outcome, code): totals for (outcome, code), totals in sums.items()}


def series(session: Session, span: str = "hour") -> dict[str, Any]:
    """Throughput (jobs finished per minute) and p50/p95 latency, per time slot."""
    step_minutes, slots = (15, 96) if span == "day" else (1, 60)
    now = utcnow().replace(second=0, microsecond=0)
    start = now - timedelta(minutes=step_minutes * (slots - 1))
    start = start - timedelta(minutes=start.minute % step_minutes)
    rows = session.execute(
        select(JobStatMinute).where(
            JobStatMinute.minute >= start, JobStatMinute.outcome != "retried"
        )
    ).scalars()
    per_slot: dict[int, Totals] = defaultdict(Totals)
    per_queue: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for row in rows:
        slot = int((row.minute - start).total_seconds() // 60) // step_minutes
        per_slot[slot].add(row)
        per_queue[row.queue][slot] += row.count
    labels = [(start + timedelta(minutes=i * step_minutes)).isoformat() + "Z" for i in range(slots)]
    return {
        "span": span,
        "stepMinutes": step_minutes,
        "labels": labels,
        "throughput": {
            queue: [round(counts.get(i, 0) / step_minutes, 2) for i in range(slots)]
            for queue, counts in sorted(per_queue.items())
        },
        "p50": [_round(per_slot[i].quantile(0.5)) if i in per_slot else None for i in range(slots)],
        "p95": [
            _round(per_slot[i].quantile(0.95)) if i in per_slot else None for i in range(slots)
        ],
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
