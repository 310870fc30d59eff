"""The consumer processes' runtime: their context, their loops, how a message runs.

``tasks.py`` holds the Huey instances and thin tasks; each task hands its message
here. Everything is built on first use, so importing opens no connections.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import TypeVar

from sqlalchemy.orm import Session, sessionmaker

from orders.config import THREAD_WORKERS_MAX, Settings
from orders.db import make_engine, make_session_factory, session_scope
from orders.ops.heartbeats import WorkerIdentity, beat, forget, this_process
from orders.ops.pause import job_is_paused
from orders.ops.retention import delete_old_job_records
from orders.pipeline.calls import Callers
from orders.pipeline.context import PipelineContext
from orders.pipeline.jobs import JobRef, send_after_commit
from orders.pipeline.jobtypes import JOB_TYPES
from orders.pipeline.messages import GATHERING, handled_here, message_groups
from orders.pipeline.runner import run
from orders.pipeline.sweeper import sweep
from orders.shop.recovery import remind_abandoned_carts
from orders.wiring import build_gateway, build_mailer, build_publisher

log = logging.getLogger("tasks")
T = TypeVar("T")

Send = Callable[[str, str, Sequence[str], int, float], None]
"""Enqueue one message: (job type, job id, more ids, priority, delay)."""

CALLS_PER_THREAD_WORKER = 8


def callers_for(settings: Settings) -> int:
    """How many of a batch's calls a consumer runs at once (:mod:`orders.pipeline.calls`):
    as many as it has jobs in flight when they are greenlets (a waiting call costs a few
    kilobytes); a few per thread worker otherwise (each waiting call holds a thread)."""
    if settings.consumer_worker_class == "greenlet":
        queues = ("orders", "payments", "notifications")
        return max(settings.consumer_workers(queue) for queue in queues)
    return THREAD_WORKERS_MAX * CALLS_PER_THREAD_WORKER


class Runtime:
    """One consumer process's shared state: settings, database, adapters, loops."""

    def __init__(self, settings: Settings, send: Send) -> None:
        self.settings = settings
        self._send = send
        self._lock = threading.Lock()
        self._sessions: sessionmaker[Session] | None = None
        self._context: PipelineContext | None = None
        self._loops: set[str] = set()
        self._last_retention = float("-inf")

    @property
    def sessions(self) -> sessionmaker[Session]:
        self.context()
        assert self._sessions is not None
        return self._sessions

    def context(self) -> PipelineContext:
        """Built on first use, so importing ``tasks`` opens no connections."""
        with self._lock:
            if self._context is None:
                engine = make_engine(self.settings, worker=True)  # short DB work, a small pool
                self._sessions = make_session_factory(engine)
                self._context = PipelineContext(
                    settings=self.settings,
                    gateway=build_gateway(self.settings),
                    mailer=build_mailer(self.settings),
                    dispatch=self.dispatch,
                    publish=build_publisher(self.settings),
                    callers=Callers(callers_for(self.settings)),
                )
            return self._context

    # --- messages -------------------------------------------------------------------

    def run_message(self, job_type: str, job_id: str, more: Sequence[str] = ()) -> None:
        """Run a message's jobs (as one batch when the type batches here)."""
        if handled_here([job_id, *more]):
            return  # a run of this process took them (no session, no statement)
        ctx = self.context()
        batch = JOB_TYPES[job_type].batch_size(self.settings) > 1
        if more and not batch:  # sent together, but this consumer runs jobs alone
            ctx.dispatch([JobRef(other, job_type) for other in more])
            more = ()
        if batch:
            GATHERING.wait(job_type, self.settings.pipeline_gather_ms / 1000)
        with session_scope(self.sessions) as session:
            # the claim itself skips a paused queue's job (no extra statement per job)
            kind = job_type if batch else None
            outcomes = run(session, [job_id, *more], ctx, job_type=kind, unless_paused=True)
            if not outcomes and not handled_here([job_id]):
                if job_is_paused(session, job_id):  # ops pause: it stays waiting
                    session.rollback()
                    log.info("job %s: its queue is paused; it stays waiting", job_id)

    def dispatch(self, refs: Sequence[JobRef]) -> list[str]:
        """Send job refs to their queues; return the ids the broker did not take.

        Jobs of a type that runs in batches, sent together (a batch's follow-ups, a
        resumed queue, the sweeper's re-sends), share a message, ``PIPELINE_BATCH`` at
        most; a consumer that runs jobs alone sends the rest on. If that message is
        lost, the sweeper re-sends each job.
        """
        failed = []
        for ids, ref in message_groups(self.settings, refs):
            priority = JOB_TYPES[ref.type].huey_priority
            try:
                self._send(ref.type, ref.id, ids[1:], priority, ref.delay)
            except Exception as exc:  # broker down: the sweeper sends it later
                log.warning("could not enqueue %d job(s) (%s): %s", len(ids), ref.type, exc)
                failed += ids
        return failed

    # --- the scheduler's loops and periodic work --------------------------------------

    def sweep_once(self) -> None:
        with session_scope(self.sessions) as session:
            sweep(session, self.context())  # it commits unit by unit

    def _transaction(self, work: Callable[[Session], T]) -> T:
        """Run ``work`` in a transaction of its own, and commit it."""
        with session_scope(self.sessions) as session:
            result = work(session)
            session.commit()
            return result

    def start_sweeper(self) -> None:
        """A thread in the scheduler consumer, so it works while the broker is down."""
        if self._claim_loop("sweeper"):
            threading.Thread(target=self._sweep_forever, name="sweeper", daemon=True).start()
            log.info("sweeper running every %s s", self.settings.sweep_interval_seconds)

    def _sweep_forever(self) -> None:
        while True:
            try:
                self.sweep_once()
            except Exception:  # the database may be away; try again next round
                log.exception("sweep failed")
            time.sleep(self.settings.sweep_interval_seconds)

    def retention(self) -> None:
        """Run job retention when ``JOB_CLEANUP_INTERVAL`` (ms) has passed since the last."""
        if time.monotonic() - self._last_retention < self.settings.job_cleanup_interval_ms / 1000:
            return
        deleted = 0
        while batch := self._transaction(partial(delete_old_job_records, settings=self.settings)):
            deleted += batch
        self._last_retention = time.monotonic()
        log.info("job retention: deleted %d old job record(s)", deleted)

    def remind_abandoned_carts(self) -> None:
        """One recovery email per abandoned cart (``CART_ABANDON_MINUTES``)."""
        refs = self._transaction(partial(remind_abandoned_carts, settings=self.settings))
        with session_scope(self.sessions) as session:
            send_after_commit(session, refs, self.dispatch)
        if refs:
            log.info("sent %d cart recovery email job(s)", len(refs))

    # --- heartbeats: the ops dashboard's "workers alive" ------------------------------

    def start_heartbeat(self, queue: str, concurrency: int) -> None:
        if self._claim_loop(f"heartbeat:{queue}"):  # startup hooks run once per worker
            worker = this_process(queue, concurrency)
            threading.Thread(
                target=self._beat, args=(worker,), name="heartbeat", daemon=True
            ).start()

    def _beat(self, worker: WorkerIdentity) -> None:
        """Beat every ``HEARTBEAT_SECONDS``, for ever."""
        while True:
            try:
                self._transaction(partial(beat, worker=worker))
            except Exception:  # the database may be away; beat again next round
                log.warning("heartbeat of %s failed", worker.id, exc_info=True)
            time.sleep(self.settings.heartbeat_seconds)

    def stop_heartbeat(self, queue: str, concurrency: int) -> None:
        with self._lock:
            if f"heartbeat:{queue}" not in self._loops:
                return
            self._loops.discard(f"heartbeat:{queue}")
        try:
            self._transaction(partial(forget, worker=this_process(queue, concurrency)))
        except Exception:
            log.warning("could not remove the heartbeat of %s", queue, exc_info=True)

    def _claim_loop(self, name: str) -> bool:
        with self._lock:
            if name in self._loops:
                return False
            self._loops.add(name)
            return True
