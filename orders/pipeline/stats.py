"""Per-minute job counters: written when an attempt ends, read for charts and metrics."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from orders.db import utcnow
from orders.domain.latency import bucket_index, quantile_ms
from orders.infra.upsert import upsert
from orders.models import JobStatMinute
from orders.models.ops import BUCKET_COLUMNS, LATENCY_BUCKETS_MS
from orders.models.tables import JOB_STATS
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
    key = (now.replace(second=0, microsecond=0), queue, job.type, outcome)
    pending: dict[tuple[Any, ...], dict[str, Any]] = session.info.setdefault(_PENDING, {})
    row = pending.setdefault(
        key,
        {
            "minute": key[0],
            "queue": queue,
            "type": job.type,
            "outcome": outcome,
            "count": 0,
            "total_ms": 0,
            **dict.fromkeys(BUCKET_COLUMNS, 0),
        },
    )
    row["count"] += 1
    row["total_ms"] += int(duration_ms)
    row[BUCKET_COLUMNS[bucket_index(LATENCY_BUCKETS_MS, duration_ms)]] += 1


@event.listens_for(Session, "before_commit")
def _write_pending(session: Session) -> None:
    pending = session.info.pop(_PENDING, None)
    for values in (pending or {}).values():
        upsert(
            session,
            JOB_STATS,
            values,
            ("minute", "queue", "type", "outcome"),
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

    def quantile(self, q: float) -> float | None:
        return quantile_ms(LATENCY_BUCKETS_MS, self.buckets, q)


def _sums(session: Session, since: datetime | None, *group: Any) -> list[Any]:
    columns = [
        func.sum(JobStatMinute.count).label("count"),
        func.sum(JobStatMinute.total_ms).label("total_ms"),
        *(func.sum(getattr(JobStatMinute, name)).label(name) for name in BUCKET_COLUMNS),
    ]
    query = select(*group, *columns).group_by(*group)
    if since is not None:
        query = query.where(JobStatMinute.minute >= since)
    return list(session.execute(query))


def totals_by(
    session: Session, since: datetime | None = None
) -> dict[tuple[str, str, str], Totals]:
    """(queue, type, outcome) -> totals, over all time or since ``since``."""
    result: dict[tuple[str, str, str], Totals] = {}
    rows = _sums(session, since, JobStatMinute.queue, JobStatMinute.type, JobStatMinute.outcome)
    for row in rows:
        totals = Totals()
        totals.add(row)
        result[(row.queue, row.type, row.outcome)] = totals
    return result


def queue_totals(session: Session, since: datetime | None = None) -> dict[str, dict[str, Totals]]:
    """queue -> outcome -> totals."""
    result: dict[str, dict[str, Totals]] = defaultdict(dict)
    for row in _sums(session, since, JobStatMinute.queue, JobStatMinute.outcome):
        totals = Totals()
        totals.add(row)
        result[row.queue][row.outcome] = totals
    return result


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
