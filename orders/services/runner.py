"""Run one job: claim it, enter its checkout step, run the step, record the outcome.

Outcomes:
- the step returns: the job is completed and its follow-up jobs are dispatched;
- :class:`StepFailed` (out of stock, ...): the checkout ends ``failed`` with its code,
  with compensation;
- :class:`GatewayCircuitOpen`: the job waits and retries, without using an attempt;
- anything else: retried with exponential backoff; after the last attempt the step's
  ``give_up`` runs (a checkout step fails the checkout and flags it for an operator);
- :class:`LeaseLost`: someone else owns the job now; we write nothing.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from orders.domain.states import TERMINAL
from orders.errors import (
    GatewayCircuitOpen,
    IllegalTransition,
    LeaseLost,
    ShopError,
    StepFailed,
)
from orders.infra.tracing import job_span
from orders.jobtypes import JOB_TYPES
from orders.logcontext import bind_checkout
from orders.models import Checkout, Email, Job, JobStatus
from orders.services import compensation, emails, pipeline
from orders.services.context import PipelineContext
from orders.services.jobs import JobRef, backoff_delay, ref, send_after_commit, trace_context_of
from orders.services.leases import Claim, claim, close, reschedule
from orders.services.timeline import EVENTS_RECORDED, move_checkout, record_event

log = logging.getLogger(__name__)


Reads = Callable[[Session, Claim, Checkout | None], object]


@dataclass(frozen=True)
class Step:
    run: Callable[..., list[Job]]
    give_up: Callable[..., list[Job] | None] | None = None  # None: fail the checkout
    # loads what the step reads into the session, in the claim's transaction: the step
    # then finds it there (a relationship, or session.get) and opens no read
    # transaction of its own (a BEGIN and a COMMIT saved)
    reads: Reads | None = None


def _lines(_session: Session, _claim: Claim, checkout: Checkout | None) -> object:
    return checkout.lines if checkout is not None else None


def _payments(_session: Session, _claim: Claim, checkout: Checkout | None) -> object:
    return checkout.payments if checkout is not None else None


def _email(session: Session, claim: Claim, _checkout: Checkout | None) -> object:
    return session.get(Email, claim.email_id) if claim.email_id is not None else None


STEPS: dict[str, Step] = {
    "reserve-stock": Step(pipeline.reserve_stock, reads=_lines),
    "process-payment": Step(pipeline.process_payment, reads=_payments),
    "create-order": Step(pipeline.create_order, reads=_lines),
    "update-inventory": Step(pipeline.update_inventory),
    "send-order-confirmation": Step(emails.send_email, emails.give_up_email, reads=_email),
    "send-recovery-email": Step(emails.send_email, emails.give_up_email, reads=_email),
    "refund-payment": Step(compensation.refund_payment, compensation.give_up_refund),
}


def run_job(
    session: Session, job_id: str, ctx: PipelineContext, *, unless_paused: bool = False
) -> str:
    """Run the job with id ``job_id`` once. Returns the outcome's name (for logs/tests).

    ``unless_paused`` (the consumers): a job of a paused queue is left waiting.
    """
    # the claim and the step entry (run_claimed) commit together
    taken = claim(
        session,
        job_id,
        ctx.worker,
        ctx.settings.lease_seconds,
        commit=False,
        unless_paused=unless_paused,
    )
    if taken is None:
        log.info("job %s not claimable (done, taken, not due or paused); skipping", job_id)
        return "skipped"
    checkout = session.get(Checkout, taken.checkout_id) if taken.checkout_id else None
    with (
        bind_checkout(checkout.public_id if checkout else None, job_id, taken.type),
        job_span(  # tracing: one span per run of a job, in its checkout's trace
            taken.type, job_id, trace_context_of(session, taken, checkout), attempt=taken.attempt
        ) as span,
    ):
        outcome = run_claimed(session, taken, checkout, ctx)
        span.done(outcome)  # tracing
        log.info("job %s (%s) attempt %d: %s", job_id, taken.type, taken.attempt, outcome)
    return outcome


def run_claimed(
    session: Session, taken: Claim, checkout: Checkout | None, ctx: PipelineContext
) -> str:
    """Enter the claimed job's step (or discard a moot job), then run it."""
    try:
        if not _enter_step(session, taken, checkout):
            session.commit()
            return "discarded"
        reads = STEPS[taken.type].reads
        # held until the step is done: the session's identity map keeps nothing alive
        held = reads(session, taken, checkout) if reads is not None else None
        session.commit()
    except LeaseLost:  # the claim rolls back too; the sweeper re-sends the job
        session.rollback()
        return "lease_lost"
    _publish(session, ctx, checkout)
    outcome = run_entered(session, taken, checkout, ctx)
    del held
    return outcome


def run_entered(
    session: Session,
    taken: Claim,
    checkout: Checkout | None,
    ctx: PipelineContext,
    raised: Exception | None = None,
) -> str:
    """Run the step of a claimed job whose checkout is in the step (committed), record
    the outcome, send the follow-ups. Returns the outcome's name. ``raised``: the step
    already ran (in a batch) and raised this: record that outcome, as if it had here."""
    job_id = taken.job_id
    follow_ups: list[JobRef] = []
    try:
        if raised is not None:
            raise raised
        follow_ups = [ref(job) for job in STEPS[taken.type].run(session, taken, checkout, ctx)]
        session.commit()
        outcome = "completed"
    except LeaseLost:
        session.rollback()
        log.warning("job %s attempt %d lost its lease; dropping its result", job_id, taken.attempt)
        return "lease_lost"
    except StepFailed as exc:
        session.rollback()
        follow_ups = _end_checkout(session, taken, ctx, exc.code, exc.message, JobStatus.FAILED)
        outcome = "failed"
    except GatewayCircuitOpen as exc:
        session.rollback()
        follow_ups = _wait_for_breaker(session, taken, ctx, exc)
        outcome = "waiting"
    except Exception as exc:
        session.rollback()
        follow_ups, outcome = _retry_or_give_up(session, taken, ctx, exc)
    send_after_commit(session, follow_ups, ctx.dispatch)
    _publish(session, ctx, checkout)
    return outcome


def _enter_step(session: Session, taken: Claim, checkout: Checkout | None) -> bool:
    """Move the checkout into this job's step. False if the job is moot (discarded)."""
    stage = JOB_TYPES[taken.type].stage
    if stage is None or checkout is None:
        return True
    if checkout.stage is stage:
        if taken.attempt > 1:
            record_event(
                session,
                checkout,
                f"Retrying {stage.value.replace('_', ' ')}, "
                f"attempt {taken.attempt}/{taken.max_attempts}",
            )
        return True
    reason = None
    if checkout.stage in TERMINAL:
        reason = f"checkout already {checkout.stage.value}"
    else:
        try:
            move_checkout(session, checkout, stage)
        except IllegalTransition as exc:
            reason = str(exc)
    if reason is None:
        return True
    log.warning("discarding job %s (%s): %s", taken.job_id, taken.type, reason)
    close(session, taken, JobStatus.DISCARDED, reason)
    return False


def _end_checkout(
    session: Session,
    taken: Claim,
    ctx: PipelineContext,
    code: str,
    message: str,
    job_status: JobStatus,
    *,
    needs_attention: bool = False,
    trace: str | None = None,
) -> list[JobRef]:
    try:
        close(session, taken, job_status, message, trace)
        checkout = session.get(Checkout, taken.checkout_id) if taken.checkout_id else None
        jobs: list[Job] = []
        if checkout is not None:
            jobs = compensation.fail_checkout(
                session, ctx.settings, checkout, code, message, needs_attention=needs_attention
            )
        session.commit()
        return [ref(job) for job in jobs]
    except LeaseLost:
        session.rollback()
        return []


def _wait_for_breaker(
    session: Session, taken: Claim, ctx: PipelineContext, exc: GatewayCircuitOpen
) -> list[JobRef]:
    delay = max(ctx.settings.retry_delay_seconds, 1.0)
    try:
        reschedule(session, taken, delay, exc.message, count_attempt=False)
        checkout = session.get(Checkout, taken.checkout_id) if taken.checkout_id else None
        if checkout is not None:
            record_event(
                session,
                checkout,
                f"Payment gateway unavailable (circuit open); waiting {delay:g} s",
            )
        session.commit()
    except LeaseLost:
        session.rollback()
        return []
    return [JobRef(taken.job_id, taken.type, delay)]


def give_up(
    session: Session,
    taken: Claim,
    ctx: PipelineContext,
    message: str,
    code: str = "processing_error",
    trace: str | None = None,
) -> list[JobRef]:
    """The last attempt failed: end the job, and the checkout if it was a checkout step."""
    step = STEPS[taken.type]
    what = f"{taken.type} failed after {taken.attempt} attempts: {message}"
    if step.give_up is None:
        return _end_checkout(
            session, taken, ctx, code, what, JobStatus.FAILED, needs_attention=True, trace=trace
        )
    try:
        close(session, taken, JobStatus.FAILED, what, trace)
        checkout = session.get(Checkout, taken.checkout_id) if taken.checkout_id else None
        step.give_up(session, taken, checkout, message)
        session.commit()
    except LeaseLost:
        session.rollback()
    return []


def _retry_or_give_up(
    session: Session, taken: Claim, ctx: PipelineContext, exc: Exception
) -> tuple[list[JobRef], str]:
    trace = traceback.format_exc()
    message = exc.message if isinstance(exc, ShopError) else f"{type(exc).__name__}: {exc}"
    if not isinstance(exc, ShopError):
        log.error("job %s (%s) raised unexpectedly:\n%s", taken.job_id, taken.type, trace)
    if taken.final:
        code = exc.code if isinstance(exc, ShopError) and exc.retryable else "processing_error"
        return give_up(session, taken, ctx, message, code, trace), "failed"
    delay = backoff_delay(ctx.settings, taken.attempt)
    try:
        reschedule(session, taken, delay, message, trace=trace)
        checkout = session.get(Checkout, taken.checkout_id) if taken.checkout_id else None
        if checkout is not None:
            record_event(
                session,
                checkout,
                f"{taken.type} attempt {taken.attempt}/{taken.max_attempts} failed ({message}); "
                f"retrying in {delay:g} s",
            )
        session.commit()
    except LeaseLost:
        session.rollback()
        return [], "lease_lost"
    return [JobRef(taken.job_id, taken.type, delay)], "retrying"


def _publish(session: Session, ctx: PipelineContext, checkout: Checkout | None) -> None:
    """Wake the checkout's progress streams, if what we committed added to its timeline
    (a stream has nothing to read otherwise; a stale mark from a rolled-back write only
    costs one wake-up)."""
    if checkout is None or not session.info.pop(EVENTS_RECORDED, False):
        return
    try:
        ctx.publish(checkout.public_id)
    except Exception:  # a wake-up is best effort; listeners also poll
        log.warning("could not publish progress for %s", checkout.public_id, exc_info=True)
