"""Run one step for many jobs at once: the pipeline's fast path under load.

A message for a reserve-stock, process-payment, create-order, update-inventory or
send-order-confirmation job claims its own jobs (unless another claim holds them) and
up to ``PIPELINE_BATCH`` of the oldest waiting jobs of its type. Their checkouts enter
the step in one statement; then one transaction closes every job, writes every effect
with set-wise statements (:mod:`orders.services.pipeline_batch`) and adds every
follow-up job. A batch of one costs what the single path does; a batch of twenty
costs a few statements more, not twenty times as many. The later messages of jobs a
batch took find them taken and claim whatever else waits (or nothing).

Only the common path is batched. A job on its second attempt, a checkout that is not
in the step's previous stage, and, if the set-wise step raises (a product runs out,
a lease was lost, a re-run finds its effects), every job of the batch run alone
through :mod:`orders.services.runner`, exactly as if each had come by itself: the
batch's claims and step entries are committed first, its step's writes only all
together, so a batch that fails has changed nothing the single path would not. An
email whose send fails, and a charge whose gateway call raised, run alone too (with
that outcome: a retry, a wait for the breaker); the batch records the others.

Steps with simulated work are never batched: their latency stands for work done per
checkout, and one wait for many would make the pipeline look faster than it is. The
payment step batches only with the simulated gateway answering at once and no
payments rate limit: its calls are made one after another (a gateway with latency,
or behind ``GATEWAY_URL``, keeps its calls overlapping across worker threads), and
the rate limit is taken per message.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from orders.config import Settings
from orders.errors import LeaseLost, OutOfStock
from orders.infra.tracing import batch_spans, job_span
from orders.jobtypes import (
    CREATE_ORDER,
    JOB_TYPES,
    PROCESS_PAYMENT,
    RESERVE_STOCK,
    SEND_ORDER_CONFIRMATION,
    UPDATE_INVENTORY,
)
from orders.logcontext import bind_checkout
from orders.models import Checkout, CheckoutStage, Email
from orders.services import pipeline_batch
from orders.services.batch_leases import claim_batch
from orders.services.context import PipelineContext
from orders.services.jobs import JobRef, ref, send_after_commit, trace_context_of
from orders.services.leases import Claim
from orders.services.runner import run_claimed, run_entered, run_job
from orders.services.timeline import EVENTS_RECORDED, move_all

log = logging.getLogger(__name__)

# job type -> (the stage its checkouts come from, None: no step of their own; the
# step's simulated work)
_BATCHED: dict[str, tuple[CheckoutStage | None, str]] = {
    RESERVE_STOCK.name: (CheckoutStage.QUEUED, "validate"),
    PROCESS_PAYMENT.name: (CheckoutStage.RESERVING_STOCK, "gateway"),
    CREATE_ORDER.name: (CheckoutStage.CHARGING_PAYMENT, "order"),
    UPDATE_INVENTORY.name: (CheckoutStage.CREATING_ORDER, "inventory"),
    SEND_ORDER_CONFIRMATION.name: (None, "email"),
}


def batchable(settings: Settings, job_type: str) -> bool:
    """Does ``job_type`` run through :func:`run_batch` with these settings?"""
    batched = _BATCHED.get(job_type)
    if batched is None or settings.pipeline_batch < 2:
        return False
    if job_type == PROCESS_PAYMENT.name and (
        settings.gateway_url or settings.payments_rate_limit > 0
    ):
        return False
    return settings.step_latency_ms(batched[1])[1] <= 0


def message_groups(settings: Settings, refs: Sequence[JobRef]) -> list[tuple[list[str], JobRef]]:
    """How ``refs`` go to the broker: (the ids a message carries, the ref it is sent
    as), in order. Jobs of a type that batches, with the same delay, share a message,
    ``PIPELINE_BATCH`` at most; every other job has its own."""
    messages: list[tuple[list[str], JobRef]] = []
    open_: dict[tuple[str, float], list[str]] = {}
    for job in refs:
        key = (job.type, job.delay)
        ids = open_.get(key)
        if ids is not None and len(ids) < settings.pipeline_batch:
            ids.append(job.id)
            continue
        ids = [job.id]
        messages.append((ids, job))
        if batchable(settings, job.type):
            open_[key] = ids
    return messages


def run_batch(
    session: Session,
    job_type: str,
    job_ids: Sequence[str],
    ctx: PipelineContext,
    *,
    unless_paused: bool = False,
) -> list[str]:
    """Claim ``job_ids`` (a message's) and the oldest waiting jobs of ``job_type``, run
    their step; the outcome of each job claimed (none: nothing was waiting)."""
    if COMPLETED_HERE.has_all(job_ids):
        return []  # a batch of this process took them: no statement at all
    claims = claim_batch(
        session,
        job_type,
        job_ids,
        ctx.worker,
        ctx.settings.lease_seconds,
        ctx.settings.pipeline_batch,
        unless_paused=unless_paused,
    )
    if not claims:
        session.rollback()
        return []
    try:
        source, _work = _BATCHED[job_type]
        checkouts = _load(session, claims, job_type)
        held = _emails(session, claims)  # found in the session by the email step
        common = [
            claim
            for claim in claims
            if claim.attempt == 1
            and claim.checkout_id in checkouts
            and (source is None or checkouts[claim.checkout_id].stage is source)
        ]
        members = [checkouts[claim.checkout_id] for claim in common]  # type: ignore[index]
        stage = JOB_TYPES[job_type].stage
        if source is not None and stage is not None:
            entered = move_all(session, members, source, stage)
        else:
            entered = members  # an email's job: its checkout stays where it is
        session.commit()
    except Exception:  # nothing claimed: each job runs alone
        session.rollback()
        log.warning("could not start a batch of %d %s jobs", len(claims), job_type, exc_info=True)
        return [run_job(session, claim.job_id, ctx) for claim in claims]
    moved = {checkout.id for checkout in entered}
    batch = [claim for claim in common if claim.checkout_id in moved]
    _publish(session, ctx, entered)
    outcomes = _run_set(session, job_type, batch, checkouts, ctx) if batch else []
    in_batch = {claim.job_id for claim in batch}
    for claim in claims:  # the rest, alone: they were claimed but not entered
        if claim.job_id not in in_batch:
            outcomes.append((claim.job_id, _alone(session, claim, checkouts, ctx, entered=False)))
    del held
    COMPLETED_HERE.add([job_id for job_id, outcome in outcomes if outcome == "completed"])
    return [outcome for _, outcome in outcomes]


class _Recent:
    """Ids of the jobs this process's batches completed, the latest ``size`` of them:
    a later message of one of them (its own, sent before the batch took it) is moot,
    and is dropped without a statement. Only completed jobs are kept: they never run
    again, so a job retried (a new message, the same id) is never mistaken for one."""

    def __init__(self, size: int = 20_000) -> None:
        self._lock = threading.Lock()
        self._order: deque[str] = deque()
        self._ids: set[str] = set()
        self.size = size

    def add(self, job_ids: Sequence[str]) -> None:
        with self._lock:
            for job_id in job_ids:
                if job_id not in self._ids:
                    self._ids.add(job_id)
                    self._order.append(job_id)
            while len(self._order) > self.size:
                self._ids.discard(self._order.popleft())

    def has_all(self, job_ids: Sequence[str]) -> bool:
        with self._lock:
            return bool(job_ids) and all(job_id in self._ids for job_id in job_ids)


COMPLETED_HERE = _Recent()


def _load(session: Session, claims: Sequence[Claim], job_type: str) -> dict[int, Checkout]:
    """The claims' checkouts (and what their step reads: lines, or payments, in a second
    SELECT), in the claim's transaction."""
    ids = [claim.checkout_id for claim in claims if claim.checkout_id is not None]
    query = select(Checkout).where(Checkout.id.in_(ids))
    if job_type == PROCESS_PAYMENT.name:
        query = query.options(selectinload(Checkout.payments))
    elif _BATCHED[job_type][0] is not None:  # the orders steps
        query = query.options(selectinload(Checkout.lines))
    return {checkout.id: checkout for checkout in session.scalars(query)}


def _emails(session: Session, claims: Sequence[Claim]) -> list[Email]:
    """The claims' emails (if they are email jobs), read in the claim's transaction."""
    ids = [claim.email_id for claim in claims if claim.email_id is not None]
    return list(session.scalars(select(Email).where(Email.id.in_(ids)))) if ids else []


def _run_set(
    session: Session,
    job_type: str,
    batch: list[Claim],
    checkouts: dict[int, Checkout],
    ctx: PipelineContext,
) -> list[tuple[str, str]]:
    """Run the batch's step set-wise: (job id, outcome) of each job."""
    members = [checkouts[claim.checkout_id] for claim in batch]  # type: ignore[index]
    traced = [(c.job_id, m.trace_context) for c, m in zip(batch, members, strict=True)]
    try:
        with batch_spans(job_type, traced) as spans:  # tracing: a span per job of the batch
            jobs, alone, raised = pipeline_batch.STEPS[job_type](session, batch, members, ctx)
            spans.ran_alone([claim.job_id for claim in alone])  # tracing
            session.commit()
    except Exception as exc:
        session.rollback()
        quiet = isinstance(exc, (pipeline_batch.NotCommonPath, OutOfStock, LeaseLost))
        log.log(
            logging.INFO if quiet else logging.WARNING,
            "a batch of %d %s jobs runs job by job: %s",
            len(batch),
            job_type,
            exc,
            exc_info=not quiet,
        )
        return [(c.job_id, _alone(session, c, checkouts, ctx, entered=True)) for c in batch]
    send_after_commit(session, [ref(job) for job in jobs], ctx.dispatch)
    _publish(session, ctx, members)
    left = {claim.job_id for claim in alone}
    if log.isEnabledFor(logging.INFO):
        for claim, checkout in zip(batch, members, strict=True):
            if claim.job_id in left:
                continue
            with bind_checkout(checkout.public_id, claim.job_id, claim.type):
                log.info(
                    "job %s (%s) attempt %d: completed (in a batch of %d)",
                    claim.job_id,
                    claim.type,
                    claim.attempt,
                    len(batch),
                )
    outcomes = [(claim.job_id, "completed") for claim in batch if claim.job_id not in left]
    for claim in alone:
        why = raised.get(claim.job_id)
        outcomes.append(
            (claim.job_id, _alone(session, claim, checkouts, ctx, entered=True, raised=why))
        )
    return outcomes


def _alone(
    session: Session,
    claim: Claim,
    checkouts: dict[int, Checkout],
    ctx: PipelineContext,
    *,
    entered: bool,
    raised: Exception | None = None,
) -> str:
    """Run one claimed job by the single path (``entered``: its checkout is in the step;
    ``raised``: what its step raised in the batch)."""
    checkout = checkouts.get(claim.checkout_id) if claim.checkout_id is not None else None
    with (
        bind_checkout(checkout.public_id if checkout else None, claim.job_id, claim.type),
        job_span(  # tracing: as in runner.run_job
            claim.type,
            claim.job_id,
            trace_context_of(session, claim, checkout),
            attempt=claim.attempt,
        ) as span,
    ):
        if entered:
            outcome = run_entered(session, claim, checkout, ctx, raised)
        else:
            outcome = run_claimed(session, claim, checkout, ctx)
        span.done(outcome)  # tracing
        log.info("job %s (%s) attempt %d: %s", claim.job_id, claim.type, claim.attempt, outcome)
    return outcome


def _publish(session: Session, ctx: PipelineContext, checkouts: Sequence[Checkout]) -> None:
    """Wake the checkouts' progress streams, if what we committed added to their
    timelines (best effort: listeners also poll)."""
    if not session.info.pop(EVENTS_RECORDED, False) or not checkouts:
        return
    try:  # one message for all (orders.infra.pubsub)
        ctx.publish(" ".join(checkout.public_id for checkout in checkouts))
    except Exception:
        log.warning("could not publish progress for %d checkouts", len(checkouts), exc_info=True)
