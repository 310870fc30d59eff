"""``/metrics``: a Prometheus collector that reads shared storage at scrape time.

Every number comes from the database (or Redis for the breaker), never from process
memory, so any gunicorn worker answers the same whatever process did the work.
Throughput and latency come from ``job_stats_minutely`` and survive retention.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import timedelta

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
from orders.models import Checkout
from orders.models.ops import LATENCY_BUCKETS_MS
from orders.ops.breaker_state import STATES, breaker_state
from orders.ops.queues import queue_counts, workers_by_queue
from orders.pipeline import stats

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ShopCollector(Collector):
    def __init__(
        self, sessions: Callable[[], AbstractContextManager[Session]], settings: Settings
    ) -> None:
        self.sessions = sessions
        self.settings = settings

    def collect(self) -> Iterator[Metric]:
        with self.sessions() as session:
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
            cumulative, running = [], 0
            for bound, count in zip((*LATENCY_BUCKETS_MS, None), totals.buckets, strict=True):
                running += count
                cumulative.append(("+Inf" if bound is None else str(bound / 1000), running))
            duration.add_metric([queue, job_type], cumulative, totals.total_ms / 1000)
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
        family = GaugeMetricFamily(
            "shop_checkouts", "Checkouts by status (never deleted)", labels=["status"]
        )
        rows = session.execute(select(Checkout.status, func.count()).group_by(Checkout.status))
        for status, count in sorted(rows, key=lambda row: row[0].value):
            family.add_metric([status.value], count)
        yield family
        latency = GaugeMetricFamily(
            "shop_checkout_duration_seconds_last_hour",
            "Placed-to-final time of checkouts finished in the last hour, by quantile",
            labels=["quantile"],
        )
        since = utcnow() - timedelta(hours=1)
        durations = sorted(
            (finished - created).total_seconds()
            for created, finished in session.execute(
                select(Checkout.created_at, Checkout.finished_at).where(
                    Checkout.finished_at >= since
                )
            )
            if finished is not None  # always (see the filter); narrows the type
        )
        for q in (0.5, 0.95, 0.99):
            value = durations[min(int(q * len(durations)), len(durations) - 1)] if durations else 0
            latency.add_metric([str(q)], value)
        yield latency


def render_metrics(
    sessions: Callable[[], AbstractContextManager[Session]], settings: Settings
) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ShopCollector(sessions, settings))
    return generate_latest(registry)
