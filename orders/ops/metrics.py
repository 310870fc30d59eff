"""``/metrics``: a Prometheus collector that reads shared storage at scrape time.

Every number comes from the database (or Redis for the breaker), never from process
memory, so any gunicorn worker answers the same whatever process did the work.
Throughput and latency come from the stored counters (``job_stats_minutely``,
``checkout_stats_minutely`` and their folded totals) and survive retention.

A scrape costs the same for a shop of a thousand checkouts or of a million: it reads
counter rows (a few minutes' worth plus the folded totals), the jobs still live (the
retention keeps the others few), and the checkouts still in flight or needing
attention through their indexes; it never reads the checkouts that ended.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import timedelta
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from orders.config import Settings
from orders.db import utcnow
from orders.models import Checkout, CheckoutStatus
from orders.models.ops import LATENCY_BUCKETS_MS
from orders.ops.breaker_state import STATES, breaker_state
from orders.ops.queues import queue_counts, workers_by_queue
from orders.pipeline import folds, stats

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ShopCollector(Collector):
    def __init__(
        self, sessions: Callable[[], AbstractContextManager[Session]], settings: Settings
    ) -> None:
        self.sessions = sessions
        self.settings = settings

    def collect(self) -> Iterator[Metric]:
        with self.sessions() as session:
            folds.fold_all(session)  # commits when it folds: do it before reading
            yield from self._queues(session)
            yield from self._jobs(session)
            yield from self._workers(session)
            yield from self._checkouts(session)
        breaker = GaugeMetricFamily(
            "shop_circuit_breaker_state",
            "Payment gateway breaker: 1 for the current state (all 0 when unknown)",
            labels=["state"],
        )
        current = breaker_state(self.settings)
        for state in STATES:
            breaker.add_metric([state], 1.0 if state == current else 0.0)
        yield breaker

    def _queues(self, session: Session) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "shop_queue_jobs",
            "Jobs in the queue by state (from the jobs table)",
            labels=["queue", "state"],
        )
        oldest = GaugeMetricFamily(
            "shop_queue_oldest_waiting_seconds", "Age of the oldest waiting job", labels=["queue"]
        )
        for queue, counts in queue_counts(session).items():
            for state in ("waiting", "scheduled", "active", "failedJobs"):
                name = "failed" if state == "failedJobs" else state
                depth.add_metric([queue, name], counts[state])
            oldest.add_metric([queue], counts["oldestWaitingSeconds"])
        yield depth
        yield oldest

    def _jobs(self, session: Session) -> Iterator[Metric]:
        processed = CounterMetricFamily(
            "shop_jobs_processed",
            "Job attempts ended, by queue, type and outcome (stored counters)",
            labels=["queue", "type", "outcome"],
        )
        duration = HistogramMetricFamily(
            "shop_job_duration_seconds",
            "Processing time of job attempts (stored histogram)",
            labels=["queue", "type"],
        )
        per_type: dict[tuple[str, str], stats.Totals] = {}
        for (queue, job_type, outcome), totals in sorted(stats.totals_by(session).items()):
            processed.add_metric([queue, job_type, outcome], totals.count)
            merged = per_type.setdefault((queue, job_type), stats.Totals())
            merged.count += totals.count
            merged.total_ms += totals.total_ms
            merged.buckets = [a + b for a, b in zip(merged.buckets, totals.buckets, strict=True)]
        for (queue, job_type), totals in sorted(per_type.items()):
            duration.add_metric([queue, job_type], _cumulative(totals), totals.total_ms / 1000)
        yield processed
        yield duration

    def _workers(self, session: Session) -> Iterator[Metric]:
        alive = GaugeMetricFamily(
            "shop_workers_alive", "Consumer processes with a recent heartbeat", labels=["queue"]
        )
        threads = GaugeMetricFamily(
            "shop_worker_threads", "Worker threads of the live consumers", labels=["queue"]
        )
        for queue, summary in workers_by_queue(session, self.settings).items():
            alive.add_metric([queue], summary["alive"])
            threads.add_metric([queue], summary["concurrency"])
        yield alive
        yield threads

    def _checkouts(self, session: Session) -> Iterator[Metric]:
        ended = stats.checkout_totals(session)
        outcomes = CounterMetricFamily(
            "shop_checkout_outcomes",
            "Checkouts that ended (completed, failed by code) or went back to the queue "
            "from failed (requeued)",
            labels=["outcome", "code"],
        )
        finished: dict[str, stats.Totals] = {}
        for (outcome, code), totals in sorted(ended.items()):
            outcomes.add_metric([outcome, code], totals.count)
            if outcome in ("completed", "failed"):
                finished.setdefault(outcome, stats.Totals()).merge(totals)
        yield outcomes

        by_status = dict.fromkeys((status.value for status in CheckoutStatus), 0)
        in_flight = (CheckoutStatus.QUEUED, CheckoutStatus.PROCESSING)
        rows = session.execute(
            select(Checkout.status, func.count())
            .where(Checkout.status.in_(in_flight))
            .group_by(Checkout.status)
        )
        for status, count in rows:
            by_status[status.value] = count
        requeued = sum(t.count for (o, _), t in ended.items() if o == "requeued")
        by_status["completed"] = finished["completed"].count if "completed" in finished else 0
        failed = finished["failed"].count if "failed" in finished else 0
        by_status["failed"] = max(failed - requeued, 0)
        family = GaugeMetricFamily(
            "shop_checkouts", "Checkouts by status now (never deleted)", labels=["status"]
        )
        for status_name, count in sorted(by_status.items()):
            family.add_metric([status_name], count)
        yield family
        yield CounterMetricFamily(
            "shop_checkouts_placed", "Checkouts placed (accepted)", value=sum(by_status.values())
        )
        yield GaugeMetricFamily(
            "shop_checkouts_needing_attention",
            "Checkouts an operator must look at (ops dashboard, needs attention)",
            value=session.scalar(
                select(func.count()).select_from(Checkout).where(Checkout.needs_attention.is_(True))
            )
            or 0,
        )

        duration = HistogramMetricFamily(
            "shop_checkout_duration_seconds",
            "Placed-to-final time of checkouts that ended (stored histogram)",
            labels=["outcome"],
        )
        for outcome, totals in sorted(finished.items()):
            duration.add_metric([outcome], _cumulative(totals), totals.total_ms / 1000)
        yield duration

        latency = GaugeMetricFamily(
            "shop_checkout_duration_seconds_last_hour",
            "Placed-to-final time of checkouts that ended in the last hour, by quantile "
            "(from the stored histogram)",
            labels=["quantile"],
        )
        last_hour = stats.Totals()
        for (outcome, _), totals in stats.checkout_totals(
            session, utcnow() - timedelta(hours=1)
        ).items():
            if outcome in ("completed", "failed"):
                last_hour.merge(totals)
        for q in (0.5, 0.95, 0.99):
            value = last_hour.quantile(q)
            latency.add_metric([str(q)], 0.0 if value is None else value / 1000)
        yield latency


def _cumulative(totals: stats.Totals) -> list[tuple[str, Any]]:
    """Prometheus histogram buckets (cumulative, in seconds) from stored per-bucket counts."""
    cumulative: list[tuple[str, Any]] = []
    running = 0
    for bound, count in zip((*LATENCY_BUCKETS_MS, None), totals.buckets, strict=True):
        running += count
        cumulative.append(("+Inf" if bound is None else str(bound / 1000), running))
    return cumulative


def render_metrics(
    sessions: Callable[[], AbstractContextManager[Session]], settings: Settings
) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ShopCollector(sessions, settings))
    return generate_latest(registry)
