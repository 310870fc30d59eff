"""Huey instances (one per queue) and their thin tasks: the consumers' entry point.

    python -m orders.worker orders|payments|notifications|scheduler

starts a consumer on its instance (:mod:`orders.consumer`). Every job type of the table
(:mod:`orders.pipeline.jobtypes`) has a task that hands its job ids to the runtime
(:mod:`orders.runtime`); the job row is the record, the message only the fast path.
This module must never import Flask.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from huey import Huey, crontab
from huey.api import TaskWrapper

from orders.config import Settings
from orders.infra import tracing
from orders.infra.consumer_metrics import instrument
from orders.infra.hueys import EmbeddedHuey, RedisHuey
from orders.infra.redis_pool import redis_pool
from orders.pipeline.jobtypes import (
    JOB_TYPES,
    MAINTENANCE,
    NOTIFICATIONS,
    ORDERS,
    PAYMENTS,
    JobType,
)
from orders.production import require_safe_start
from orders.runtime import Runtime
from orders.wiring import configure_logging

settings = Settings.from_env()
require_safe_start(settings)  # a consumer refuses unsafe production settings before it runs
configure_logging()
tracing.setup("worker")  # on only with the OTEL_* variables (docs/operations.md)


def make_huey(queue: str) -> Huey:
    name = f"{settings.queue_prefix}-{queue}"
    if settings.redis_url:
        return RedisHuey(name, connection_pool=redis_pool(settings.redis_url), results=False)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    path = settings.data_dir.resolve() / f"huey-{queue}.db"
    return EmbeddedHuey(name, filename=str(path), results=False)


QUEUES: dict[str, Huey] = {queue: make_huey(queue) for queue in (ORDERS, PAYMENTS, NOTIFICATIONS)}
orders_queue, payments_queue, notifications_queue = QUEUES.values()
scheduler = make_huey(MAINTENANCE)


def _send(job_type: str, job_id: str, more: Sequence[str], priority: int, delay: float) -> None:
    task, options = TASKS[job_type], {"id": job_id, "priority": priority}
    if delay > 0:
        options["delay"] = delay
    task.huey.enqueue(task.s(job_id, list(more), **options) if more else task.s(job_id, **options))


runtime = Runtime(settings, _send)
dispatch = runtime.dispatch

# The seed's payments rate limit (1000 charges per 60 s), Huey's fixed-window limiter
# counted in the broker, shared by every payments consumer. Over the limit Huey
# re-enqueues the message for the next window; the job row is not claimed meanwhile.
payments_rate = payments_queue.rate_limit(
    "charges", max(settings.payments_rate_limit, 1), max(settings.payments_rate_seconds, 1)
)


def _task(job_type: JobType) -> TaskWrapper:
    def run(job_id: str, more: Sequence[str] = ()) -> None:
        if job_type.rate_limited and settings.payments_rate_limit > 0:  # then never batched
            payments_rate.acquire()
        runtime.run_message(job_type.name, job_id, more)

    return QUEUES[job_type.queue].task(name=job_type.name)(run)


TASKS: dict[str, TaskWrapper] = {name: _task(job_type) for name, job_type in JOB_TYPES.items()}

for _queue, _huey, _concurrency in (
    (ORDERS, orders_queue, settings.orders_concurrency),
    (PAYMENTS, payments_queue, settings.payments_concurrency),
    (NOTIFICATIONS, notifications_queue, settings.notifications_concurrency),
    (MAINTENANCE, scheduler, 1),
):
    _huey.on_startup(name="heartbeat")(partial(runtime.start_heartbeat, _queue, _concurrency))
    _huey.on_shutdown(name="heartbeat")(partial(runtime.stop_heartbeat, _queue, _concurrency))
    instrument(_huey, _queue, _concurrency)  # WORKER_METRICS_PORT: this consumer's /metrics

scheduler.on_startup(name="sweeper")(runtime.start_sweeper)
scheduler.periodic_task(crontab(minute="*"), name="job-retention")(runtime.retention)
scheduler.periodic_task(crontab(minute="*"), name="remind-abandoned-carts")(
    runtime.remind_abandoned_carts
)
