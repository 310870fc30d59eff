"""Huey instances (one per queue) and their thin tasks.

Run one consumer per queue (see the Procfile):

    python -m orders.worker orders          # reserve-stock, create-order, update-inventory
    python -m orders.worker payments        # process-payment, refund-payment
    python -m orders.worker notifications   # send-order-confirmation, send-recovery-email
    python -m orders.worker scheduler       # exactly one: sweeper + periodic tasks

(each runs a Huey consumer on its instance below: on PostgreSQL + Redis, hundreds of
jobs in flight as greenlets; see :mod:`orders.worker` and :mod:`orders.consumer`).

Each task takes a job id, opens a session and calls the job runner; the job row in
the database is the record, the Huey message only the fast path. This module must
never import Flask.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from functools import partial

from huey import Huey, PriorityRedisExpireHuey, SqliteHuey, crontab

from orders.config import Settings
from orders.db import make_engine, make_session_factory, session_scope
from orders.jobtypes import JOB_TYPES, MAINTENANCE, NOTIFICATIONS, ORDERS, PAYMENTS
from orders.services.batch import COMPLETED_HERE, batchable, message_groups, run_batch
from orders.services.context import PipelineContext
from orders.services.jobs import JobRef
from orders.services.ops.heartbeats import WorkerIdentity, beat_forever, forget, this_process
from orders.services.ops.pause import job_is_paused
from orders.services.ops.retention import sweep_job_records
from orders.services.recovery import remind_abandoned_carts
from orders.services.runner import run_job
from orders.services.sweeper import sweep
from orders.wiring import (
    build_gateway,
    build_mailer,
    build_publisher,
    configure_logging,
    redis_pool,
)

log = logging.getLogger("tasks")
settings = Settings.from_env()
configure_logging()


def make_huey(queue: str) -> Huey:
    name = f"{settings.queue_prefix}-{queue}"
    if settings.redis_url:
        return PriorityRedisExpireHuey(
            name, connection_pool=redis_pool(settings.redis_url), results=False
        )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return SqliteHuey(
        name, filename=str(settings.data_dir.resolve() / f"huey-{queue}.db"), results=False
    )


orders_queue = make_huey(ORDERS)
payments_queue = make_huey(PAYMENTS)
notifications_queue = make_huey(NOTIFICATIONS)
scheduler = make_huey(MAINTENANCE)
QUEUES: dict[str, Huey] = {
    ORDERS: orders_queue,
    PAYMENTS: payments_queue,
    NOTIFICATIONS: notifications_queue,
}

_engine = None
_sessions = None
_context: PipelineContext | None = None


def context() -> PipelineContext:
    """Built on first use, so importing this module opens no connections."""
    global _engine, _sessions, _context
    if _context is None:
        _engine = make_engine(settings, worker=True)  # WORKER_DB_POOL, for short transactions
        _sessions = make_session_factory(_engine)
        _context = PipelineContext(
            settings=settings,
            gateway=build_gateway(settings),
            mailer=build_mailer(settings),
            dispatch=dispatch,
            publish=build_publisher(settings),
        )
    return _context


def _run(job_id: str, job_type: str | None = None, more: Sequence[str] = ()) -> None:
    ctx = context()
    assert _sessions is not None
    batch = job_type is not None and batchable(settings, job_type)
    if more and not batch:  # sent together, but this consumer runs jobs alone
        assert job_type is not None
        ctx.dispatch([JobRef(other, job_type) for other in more])
    with session_scope(_sessions) as session:
        # the claim itself skips a paused queue's job (no extra statement per job)
        if batch:
            assert job_type is not None
            outcomes = run_batch(session, job_type, [job_id, *more], ctx, unless_paused=True)
            outcome = "skipped" if not outcomes else f"{len(outcomes)} job(s) of its type run"
        else:
            outcome = run_job(session, job_id, ctx, unless_paused=True)
        done_here = batch and COMPLETED_HERE.has_all([job_id])  # then not paused
        if outcome == "skipped" and not done_here and job_is_paused(session, job_id):
            session.rollback()  # ops pause: it stays waiting (resume re-sends it)
            log.info("job %s: its queue is paused; it stays waiting", job_id)
            return
    log.debug("job %s: %s", job_id, outcome)  # the runner logs it with its checkout id


@orders_queue.task(name="reserve-stock")
def reserve_stock(job_id: str, more: Sequence[str] = ()) -> None:
    _run(job_id, "reserve-stock", more)  # with more of its type waiting, run as a batch


# The seed's payments rate limit (1000 charges per 60 s), with Huey's fixed-window
# limiter: counted in the broker's storage, shared by every payments consumer. Over the
# limit Huey re-enqueues the message for the next window; the job row is not claimed
# meanwhile (and the sweeper re-sends it should that message be lost).
payments_rate = payments_queue.rate_limit(
    "charges", max(settings.payments_rate_limit, 1), max(settings.payments_rate_seconds, 1)
)


@payments_queue.task(name="process-payment")
def process_payment(job_id: str, more: Sequence[str] = ()) -> None:
    if settings.payments_rate_limit > 0:  # then payments never batch: a token per charge
        payments_rate.acquire()
    _run(job_id, "process-payment", more)


@orders_queue.task(name="create-order")
def create_order(job_id: str, more: Sequence[str] = ()) -> None:
    _run(job_id, "create-order", more)  # with more of its type waiting, run as a batch


@orders_queue.task(name="update-inventory")
def update_inventory(job_id: str, more: Sequence[str] = ()) -> None:
    _run(job_id, "update-inventory", more)  # with more of its type waiting, run as a batch


@notifications_queue.task(name="send-order-confirmation")
def send_order_confirmation(job_id: str, more: Sequence[str] = ()) -> None:
    _run(job_id, "send-order-confirmation", more)  # with more waiting, run as a batch


@notifications_queue.task(name="send-recovery-email")
def send_recovery_email(job_id: str) -> None:
    _run(job_id)


@payments_queue.task(name="refund-payment")
def refund_payment(job_id: str) -> None:
    _run(job_id)


TASKS = {
    "reserve-stock": reserve_stock,
    "process-payment": process_payment,
    "create-order": create_order,
    "update-inventory": update_inventory,
    "send-order-confirmation": send_order_confirmation,
    "send-recovery-email": send_recovery_email,
    "refund-payment": refund_payment,
}
assert set(TASKS) == set(JOB_TYPES), "every job type needs a task"


def dispatch(refs: Sequence[JobRef]) -> list[str]:
    """Send job refs to their queues; return the ids the broker did not take.

    Jobs of a type that runs in batches, sent together (a batch's follow-ups, a
    resumed queue, the sweeper's re-sends), share a message, ``PIPELINE_BATCH`` at
    most (``orders.services.batch.message_groups``); a consumer that runs jobs alone
    sends the rest on. If that message is lost, the sweeper re-sends each job.
    """
    failed = []
    for ids, ref in message_groups(settings, refs):
        task = TASKS[ref.type]
        options = {"id": ref.id, "priority": JOB_TYPES[ref.type].huey_priority}
        if ref.delay > 0:
            options["delay"] = ref.delay
        try:
            if len(ids) > 1:
                task.huey.enqueue(task.s(ref.id, ids[1:], **options))
            else:
                task.huey.enqueue(task.s(ref.id, **options))
        except Exception as exc:  # broker down: the sweeper sends it later
            log.warning("could not enqueue %d job(s) (%s): %s", len(ids), ref.type, exc)
            failed += ids
    return failed


# --- the scheduler consumer: sweeper loop --------------------------------------------

_sweeper_started = threading.Event()


def sweep_once() -> None:
    ctx = context()
    assert _sessions is not None
    with session_scope(_sessions) as session:
        sweep(session, ctx)


def _sweeper_loop() -> None:
    while True:
        try:
            sweep_once()
        except Exception:  # the database may be away; try again next round
            log.exception("sweep failed")
        time.sleep(settings.sweep_interval_seconds)


@scheduler.on_startup()
def start_sweeper() -> None:
    """Runs in the scheduler consumer only. A thread, so it works while Redis is down."""
    if not _sweeper_started.is_set():
        _sweeper_started.set()
        threading.Thread(target=_sweeper_loop, name="sweeper", daemon=True).start()
        log.info("sweeper running every %s s", settings.sweep_interval_seconds)


# --- ops: consumer heartbeats, job retention -------------------------------

_heartbeats_started: set[str] = set()
_heartbeat_lock = threading.Lock()


def _heartbeat_loop(worker: WorkerIdentity) -> None:
    context()
    assert _sessions is not None
    beat_forever(partial(session_scope, _sessions), worker, settings.heartbeat_seconds)


def _start_heartbeat(queue: str, concurrency: int) -> None:
    with _heartbeat_lock:  # startup hooks run once per worker thread
        if queue in _heartbeats_started:
            return
        _heartbeats_started.add(queue)
    worker = this_process(queue, concurrency)
    threading.Thread(target=_heartbeat_loop, args=(worker,), name="heartbeat", daemon=True).start()


def _stop_heartbeat(queue: str, concurrency: int) -> None:
    with _heartbeat_lock:
        if queue not in _heartbeats_started:
            return
        _heartbeats_started.discard(queue)
    try:
        context()
        assert _sessions is not None
        with session_scope(_sessions) as session:
            forget(session, this_process(queue, concurrency))
    except Exception:
        log.warning("could not remove the heartbeat of %s", queue, exc_info=True)


for _queue, _huey, _concurrency in (
    (ORDERS, orders_queue, settings.orders_concurrency),
    (PAYMENTS, payments_queue, settings.payments_concurrency),
    (NOTIFICATIONS, notifications_queue, settings.notifications_concurrency),
    (MAINTENANCE, scheduler, 1),
):
    _huey.on_startup(name="heartbeat")(partial(_start_heartbeat, _queue, _concurrency))
    _huey.on_shutdown(name="heartbeat")(partial(_stop_heartbeat, _queue, _concurrency))

_last_retention = float("-inf")


@scheduler.periodic_task(crontab(minute="*"), name="job-retention")
def job_retention() -> None:
    """Every minute, run retention when ``JOB_CLEANUP_INTERVAL`` (ms) has passed."""
    global _last_retention
    if time.monotonic() - _last_retention < settings.job_cleanup_interval_ms / 1000:
        return
    context()
    assert _sessions is not None
    with session_scope(_sessions) as session:
        deleted = sweep_job_records(session, settings)
    _last_retention = time.monotonic()
    log.info("job retention: deleted %d old job record(s)", deleted)


@scheduler.periodic_task(crontab(minute="*"), name="remind-abandoned-carts")
def remind_abandoned_carts_task() -> None:
    """Every minute: one recovery email per abandoned cart (CART_ABANDON_MINUTES)."""
    context()
    assert _sessions is not None
    with session_scope(_sessions) as session:
        refs = remind_abandoned_carts(session, settings, dispatch)
    if refs:
        log.info("sent %d cart recovery email job(s)", len(refs))
