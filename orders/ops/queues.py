"""What the queues look like now: counts by state, oldest waiting job, health, overview."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session

from orders.config import Settings
from orders.db import utcnow
from orders.domain.scaling import DEFAULT_MAX_WORKERS, DEFAULT_MIN_WORKERS, recommend_workers
from orders.models import Checkout, CheckoutStatus, Job, JobStatus
from orders.ops.breaker_state import breaker_state
from orders.ops.heartbeats import list_workers
from orders.ops.pause import paused_queues
from orders.pipeline import stats
from orders.pipeline.jobtypes import QUEUES

SEED_ACTIVE_LIMIT = 10
"""The seed's health rule: every queue has fewer than 10 active jobs."""


def configured_concurrency(settings: Settings, queue: str) -> int:
    return int(getattr(settings, f"{queue}_concurrency", 1))


def queue_counts(session: Session) -> dict[str, dict[str, Any]]:
    """Per queue: waiting, scheduled, active (from ``jobs``), completed and failed (the
    stored counters, so retention does not change them), failedJobs (failed rows kept),
    oldestWaitingSeconds."""
    now = utcnow()
    due = or_(Job.run_at.is_(None), Job.run_at <= now)
    state = case(
        (Job.status == JobStatus.QUEUED, "waiting"),
        (and_(Job.status == JobStatus.SCHEDULED, due), "waiting"),
        (Job.status == JobStatus.SCHEDULED, "scheduled"),
        (Job.status == JobStatus.ACTIVE, "active"),
        else_="failedJobs",
    )
    waiting_since = case(
        (and_(Job.status == JobStatus.QUEUED, Job.attempts == 0), Job.created_at),
        (Job.status == JobStatus.QUEUED, func.coalesce(Job.started_at, Job.created_at)),
        else_=Job.run_at,
    )
    counts: dict[str, dict[str, Any]] = {
        queue: {
            "waiting": 0,
            "active": 0,
            "scheduled": 0,
            "completed": 0,
            "failed": 0,
            "failedJobs": 0,
            "oldestWaitingSeconds": 0.0,
        }
        for queue in QUEUES
    }
    live = (JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.ACTIVE, JobStatus.FAILED)
    rows = session.execute(
        select(Job.queue, state.label("state"), func.count(), func.min(waiting_since))
        .where(Job.status.in_(live))
        .group_by(Job.queue, state)
    )
    for queue, name, count, oldest in rows:
        entry = counts.get(queue)
        if entry is None:
            continue
        entry[name] = count
        if name == "waiting" and oldest is not None:
            entry["oldestWaitingSeconds"] = round(max((now - oldest).total_seconds(), 0.0), 1)
    for queue, outcomes in stats.queue_totals(session).items():
        entry = counts.get(queue)
        if entry is not None:
            entry["completed"] = outcomes["completed"].count if "completed" in outcomes else 0
            entry["failed"] = outcomes["failed"].count if "failed" in outcomes else 0
    return counts


def workers_by_queue(session: Session, settings: Settings) -> dict[str, Any]:
    workers = list_workers(session, settings.heartbeat_seconds)
    summary: dict[str, Any] = {}
    for queue in (*QUEUES, "maintenance"):
        mine = [w for w in workers if w["queue"] == queue]
        alive = [w for w in mine if w["alive"]]
        summary[queue] = {
            "alive": len(alive),
            "dead": len(mine) - len(alive),
            "concurrency": sum(int(w["concurrency"]) for w in alive),
            "processes": mine,
        }
    return summary


def queue_health(session: Session, settings: Settings) -> tuple[bool, dict[str, Any]]:
    """The seed's ``/api/health/queues`` body, plus paused queues; (healthy, body)."""
    counts = queue_counts(session)
    workers = workers_by_queue(session, settings)
    paused = paused_queues(session)
    healthy = all(
        c["active"] < SEED_ACTIVE_LIMIT
        and c["oldestWaitingSeconds"] <= settings.health_max_wait_seconds
        for c in counts.values()
    )
    queues = {
        name: {key: c[key] for key in ("waiting", "active", "scheduled", "completed", "failed")}
        | {"oldestWaitingSeconds": c["oldestWaitingSeconds"], "paused": name in paused}
        for name, c in counts.items()
    }
    body = {"status": "healthy" if healthy else "unhealthy", "queues": queues, "workers": workers}
    return healthy, body


def funnel(session: Session, since_minutes: int = 60) -> dict[str, Any]:
    """Checkouts placed in the last hour: how many completed, failed (by code), in flight."""
    since = utcnow() - timedelta(minutes=since_minutes)
    rows = session.execute(
        select(Checkout.status, Checkout.error_code, func.count())
        .where(Checkout.created_at >= since)
        .group_by(Checkout.status, Checkout.error_code)
    )
    result: dict[str, Any] = {"placed": 0, "completed": 0, "inFlight": 0, "failed": {}}
    for status, code, count in rows:
        result["placed"] += count
        if status is CheckoutStatus.COMPLETED:
            result["completed"] += count
        elif status is CheckoutStatus.FAILED:
            key = code or "unknown"
            result["failed"][key] = result["failed"].get(key, 0) + count
        else:
            result["inFlight"] += count
    result["needsAttention"] = session.scalar(
        select(func.count()).select_from(Checkout).where(Checkout.needs_attention.is_(True))
    )
    return result


def overview(session: Session, settings: Settings, span: str = "hour") -> dict[str, Any]:
    """Everything the overview page shows (also what the SSE stream pushes)."""
    counts = queue_counts(session)
    workers = workers_by_queue(session, settings)
    paused = paused_queues(session)
    now = utcnow()
    last5 = stats.queue_totals(session, now - timedelta(minutes=5))
    last_hour = stats.queue_totals(session, now - timedelta(hours=1))
    queues: dict[str, Any] = {}
    for name, c in counts.items():
        finished = stats.Totals()
        for outcome in ("completed", "failed", "discarded"):
            if outcome in last_hour.get(name, {}):
                t = last_hour[name][outcome]
                finished.count += t.count
                finished.buckets = [a + b for a, b in zip(finished.buckets, t.buckets, strict=True)]
        done5 = sum(t.count for o, t in last5.get(name, {}).items() if o != "retried")
        current = workers[name]["concurrency"] if name in workers else 0
        p50, p95 = finished.quantile(0.5), finished.quantile(0.95)
        queues[name] = {
            **c,
            "paused": name in paused,
            "throughputPerMinute": round(done5 / 5, 2),
            "p50Ms": None if p50 is None else round(p50, 1),
            "p95Ms": None if p95 is None else round(p95, 1),
            "workersAlive": workers.get(name, {}).get("alive", 0),
            "recommendedWorkers": recommend_workers(
                c["waiting"],
                current or configured_concurrency(settings, name),
                DEFAULT_MIN_WORKERS,
                DEFAULT_MAX_WORKERS,
            ),
        }
    return {
        "at": now.isoformat() + "Z",
        "queues": queues,
        "workers": workers,
        "breaker": breaker_state(settings),
        "funnel": funnel(session),
        "series": stats.series(session, span),
    }
