"""Run a step for one job or for many: claim, enter, load, call, write, record outcomes.

One message names one job (or a few sent together); when its type batches
(:meth:`orders.pipeline.jobtypes.JobType.batch_size`) the claim also takes the oldest waiting
jobs of the type. A batch of one is the single case: every job goes through the same
phases (:mod:`orders.pipeline.step`):

1. one transaction claims the jobs, moves their checkouts into the step (set-wise),
   discards moot jobs (a checkout that ended meanwhile), and loads what the step
   reads; then the progress streams are woken;
2. the step's slow outside work runs per job with no transaction open;
3. one transaction closes every job under its lease, writes every effect and adds
   every follow-up job; if it raises, it is rolled back and written job by job
   through the same code, so only the job at fault takes the error.

Outcomes of a job:
- written: ``completed``, its follow-up jobs are sent to the broker after commit;
- :class:`StepFailed` (out of stock, ...): the checkout ends ``failed`` with its code,
  with compensation;
- :class:`GatewayCircuitOpen`: the job waits and retries, without using an attempt;
- anything else: retried with exponential backoff; after the last attempt the step's
  ``give_up`` runs (a checkout step fails the checkout and flags it for an operator);
- :class:`LeaseLost`: someone else owns the job now; we write nothing.

What a failure writes is :mod:`orders.pipeline.failures`'s; the runner owns every
transaction: steps never commit.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import AbstractContextManager

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from orders.domain.states import TERMINAL, check_move
from orders.errors import GatewayCircuitOpen, IllegalTransition, LeaseLost, ShopError, StepFailed
from orders.infra.tracing import RunSpans, TracedJob, run_spans
from orders.logcontext import bind_checkout
from orders.models import Checkout, CheckoutStage, JobStatus
from orders.pipeline import failures
from orders.pipeline.calls import in_groups
from orders.pipeline.context import PipelineContext
from orders.pipeline.jobs import JobRef, send_after_commit
from orders.pipeline.jobtypes import JOB_TYPES, JobType
from orders.pipeline.leases import Claim, claim, close, close_all
from orders.pipeline.messages import COMPLETED_HERE, RUNNING_HERE, handled_here
from orders.pipeline.step import Item, Step, checkouts_of
from orders.pipeline.timeline import EVENTS_RECORDED, move_all, record_event

log = logging.getLogger(__name__)


def run_job(
    session: Session, job_id: str, ctx: PipelineContext, *, unless_paused: bool = False
) -> str:
    """Run the job with id ``job_id`` alone; its outcome ("skipped": not claimable)."""
    outcomes = run(session, [job_id], ctx, unless_paused=unless_paused)
    return outcomes[0] if outcomes else "skipped"


def run(
    session: Session,
    job_ids: Sequence[str],
    ctx: PipelineContext,
    *,
    job_type: str | None = None,
    unless_paused: bool = False,
) -> list[str]:
    """Claim ``job_ids`` (a message's) and, if ``job_type`` batches, the oldest waiting
    jobs of that type; run their step. The outcome of each job claimed (none: nothing
    was claimable: done, taken, not due, or its queue paused when ``unless_paused``)."""
    if handled_here(job_ids):
        return []  # a run of this process took them: no statement at all
    # Wait for a connection before deciding what to claim: a busy consumer's messages
    # queue here, and a batch that got one first may have taken this message's jobs
    # (a claim that finds nothing still costs its round trips), or left room for more.
    session.connection()
    if handled_here(job_ids):
        return []
    extra = 0
    if job_type is not None:  # more jobs, within the queue's jobs in flight (*_CONCURRENCY)
        batched = JOB_TYPES[job_type]
        wanted = batched.batch_size(ctx.settings) - len(job_ids)
        limit = ctx.settings.jobs_in_flight(batched.queue) - len(job_ids)
        extra = RUNNING_HERE.reserve(limit, wanted)
    claims: list[Claim] = []
    try:
        claims = claim(
            session,
            job_ids,
            ctx.worker,
            ctx.settings.lease_seconds,
            job_type=job_type,
            extra=extra,
            unless_paused=unless_paused,
        )
    finally:
        claimed = [c.job_id for c in claims]
        RUNNING_HERE.settle(extra, claimed)
    if not claims:
        session.rollback()
        log.info("job(s) %s not claimable (done, taken, not due or paused)", ", ".join(job_ids))
        return []
    outcomes: dict[str, str] = {}
    try:
        for kind in dict.fromkeys(c.type for c in claims):  # one type, unless a mixed message
            outcomes.update(
                _run_claimed(session, JOB_TYPES[kind], [c for c in claims if c.type == kind], ctx)
            )
        COMPLETED_HERE.add([job_id for job_id, result in outcomes.items() if result == "completed"])
    finally:
        RUNNING_HERE.discard(claimed)
    return [outcomes[c.job_id] for c in claims]


def _run_claimed(
    session: Session, job_type: JobType, claims: list[Claim], ctx: PipelineContext
) -> dict[str, str]:
    step = job_type.runs
    outcomes: dict[str, str] = {}
    try:
        items = _enter(session, job_type, claims, outcomes)
        if items:
            step.load(session, items)
        session.commit()  # the claims, the step entries and the discards together
    except LeaseLost:  # a checkout changed under us: the sweeper re-drives the jobs
        session.rollback()
        return {c.job_id: "lease_lost" for c in claims}
    _publish(session, ctx, [item.checkout for item in items])
    spans = run_spans([_traced(job_type, item) for item in items])

    def call(item: Item) -> None:
        with _bound(item), spans.of(item.claim.job_id):
            try:
                item.result = step.call(item, ctx)
            except Exception as exc:  # the item's outcome, recorded by _finish
                item.raised = exc

    gather = ctx.settings.pipeline_gather_ms / 1000
    for group in in_groups(items, call, ctx.callers, gather):
        outcomes.update(_finish(session, job_type, group, ctx, spans, len(items)))
    return outcomes


def _finish(
    session: Session,
    job_type: JobType,
    items: list[Item],
    ctx: PipelineContext,
    spans: RunSpans,
    batch: int,
) -> dict[str, str]:
    """Write the items whose calls returned (set-wise; job by job if that raises),
    record the failures, send the follow-ups: each item's outcome (``batch``: how
    many jobs the run took, for the log)."""
    step = job_type.runs
    follow_ups: list[JobRef] = []
    written = [item for item in items if item.raised is None]
    failed = [(item, item.raised) for item in items if item.raised is not None]
    if written:
        try:
            with spans.shared([item.claim.job_id for item in written]):
                follow_ups += _write(session, step, written, ctx)
        except Exception as exc:
            session.rollback()
            if len(written) == 1:
                failed.append((written[0], exc))
            else:  # one by one, through the same write: only the one at fault fails
                _log_set_failure(job_type, len(written), exc)
                for item in written:
                    try:
                        with spans.of(item.claim.job_id):
                            follow_ups += _write(session, step, [item], ctx)
                    except Exception as alone:
                        session.rollback()
                        failed.append((item, alone))
    done = {item.claim.job_id for item, _ in failed}
    outcomes = {item.claim.job_id: "completed" for item in written if item.claim.job_id not in done}
    for item, error in failed:
        with spans.of(item.claim.job_id):
            refs, outcomes[item.claim.job_id] = _after_failure(session, item, error, ctx)
        follow_ups += refs
    spans.done(outcomes)
    send_after_commit(session, follow_ups, ctx.dispatch)
    _publish(session, ctx, [item.checkout for item in items])
    if log.isEnabledFor(logging.INFO):
        for item in items:
            with _bound(item):
                log.info(
                    "job %s (%s) attempt %d: %s%s",
                    item.claim.job_id,
                    item.claim.type,
                    item.claim.attempt,
                    outcomes[item.claim.job_id],
                    f" (in a batch of {batch})" if batch > 1 else "",
                )
    return outcomes


def _write(
    session: Session, step: Step, items: Sequence[Item], ctx: PipelineContext
) -> list[JobRef]:
    """Close the items' jobs under their leases (first: the row locks), write the step's
    effects and follow-ups, commit. Raises (nothing kept) if any lease was lost."""
    claims = [item.claim for item in items]
    if len(close_all(session, claims, JobStatus.COMPLETED)) != len(claims):
        raise LeaseLost(f"{len(claims)} job(s) of which some are no longer ours")
    refs = step.write(session, items, ctx)
    session.commit()
    return refs


_CHECKOUTS = select(Checkout).where(Checkout.id.in_(bindparam("p_ids", expanding=True)))


def _enter(
    session: Session, job_type: JobType, claims: list[Claim], outcomes: dict[str, str]
) -> list[Item]:
    """Move the claimed jobs' checkouts into the step; discard moot jobs (their outcome
    goes in ``outcomes``). The items to run."""
    ids = [c.checkout_id for c in claims if c.checkout_id is not None]
    checkouts = {}
    if ids:
        checkouts = {c.id: c for c in session.scalars(_CHECKOUTS, {"p_ids": ids})}
    items = [Item(c, checkouts.get(c.checkout_id) if c.checkout_id else None) for c in claims]
    stage, source = job_type.stage, job_type.source
    if stage is None:
        return items
    entering = [item for item in items if item.checkout and item.checkout.stage is source]
    if source is not None and entering:
        moved = {c.id for c in move_all(session, checkouts_of(entering), source, stage)}
        if len(moved) != len(entering):
            raise LeaseLost("a checkout left its stage under us")
    runnable = []
    for item in items:
        checkout = item.checkout
        if checkout is None or item in entering:
            runnable.append(item)
        elif checkout.stage is stage:  # a retry, or a re-drive after a lost worker
            if item.claim.attempt > 1:
                record_event(
                    session,
                    checkout,
                    f"Retrying {stage.value.replace('_', ' ')}, "
                    f"attempt {item.claim.attempt}/{item.claim.max_attempts}",
                )
            runnable.append(item)
        else:
            reason = _moot(checkout.stage, stage)
            log.warning("discarding job %s (%s): %s", item.claim.job_id, item.claim.type, reason)
            close(session, item.claim, JobStatus.DISCARDED, reason)
            outcomes[item.claim.job_id] = "discarded"
    return runnable


def _moot(current: CheckoutStage, stage: CheckoutStage) -> str:
    if current in TERMINAL:
        return f"checkout already {current.value}"
    try:
        check_move(current, stage)
    except IllegalTransition as exc:
        return str(exc)
    return f"checkout is {current.value}"


def _after_failure(
    session: Session, item: Item, exc: Exception, ctx: PipelineContext
) -> tuple[list[JobRef], str]:
    """Record what a job's step raised, in a transaction of its own: the follow-ups and
    the outcome."""
    taken = item.claim
    with _bound(item):
        if isinstance(exc, LeaseLost):
            log.warning(
                "job %s attempt %d lost its lease; dropping its result", taken.job_id, taken.attempt
            )
            return [], "lease_lost"
        try:
            if isinstance(exc, StepFailed):
                refs = failures.fail_checkout(session, taken, ctx, exc.code, exc.message)
                outcome = "failed"
            elif isinstance(exc, GatewayCircuitOpen):
                refs, outcome = failures.wait_for_breaker(session, taken, ctx, exc), "waiting"
            else:
                refs, outcome = failures.retry_or_give_up(session, taken, ctx, exc)
            session.commit()
        except LeaseLost:
            session.rollback()
            return [], "lease_lost"
        return refs, outcome


def _log_set_failure(job_type: JobType, size: int, exc: Exception) -> None:
    expected = isinstance(exc, (ShopError, LeaseLost))  # out of stock, a lease lost...
    log.log(
        logging.INFO if expected else logging.WARNING,
        "a batch of %d %s jobs is written job by job: %s",
        size,
        job_type.name,
        exc,
        exc_info=not expected,
    )


def _traced(job_type: JobType, item: Item) -> TracedJob:
    """What the item's span needs: the trace stored with its job (or its checkout)."""
    stored = item.claim.trace_context or (item.checkout.trace_context if item.checkout else None)
    return TracedJob(item.claim.job_id, job_type.name, job_type.queue, item.claim.attempt, stored)


def _bound(item: Item) -> AbstractContextManager[None]:
    checkout = item.checkout
    return bind_checkout(
        checkout.public_id if checkout else None, item.claim.job_id, item.claim.type
    )


def _publish(session: Session, ctx: PipelineContext, checkouts: Sequence[Checkout | None]) -> None:
    """Wake the checkouts' progress streams, if what we committed added to their
    timelines (a stream has nothing to read otherwise; a stale mark from a rolled-back
    write only costs one wake-up). One message for all (orders.infra.pubsub)."""
    if not session.info.pop(EVENTS_RECORDED, False):
        return
    public_ids = list(dict.fromkeys(c.public_id for c in checkouts if c is not None))
    if not public_ids:
        return
    try:
        ctx.publish(" ".join(public_ids))
    except Exception:  # a wake-up is best effort; listeners also poll
        log.warning("could not publish progress for %d checkout(s)", len(public_ids), exc_info=True)
