"""What a step's failure makes of its job, in the caller's transaction: the checkout
failed with compensation (:class:`~orders.errors.StepFailed`), the job waiting for the
gateway's circuit to close without using an attempt, a retry with backoff, or, after
the last attempt, giving up (the runner after a failed write, the sweeper after a
lease ran out). Each returns the jobs to send once the caller commits; each raises
:class:`~orders.errors.LeaseLost` if the job is no longer ours.
"""

from __future__ import annotations

import logging
import traceback

from sqlalchemy.orm import Session

from orders.errors import GatewayCircuitOpen, ShopError
from orders.models import Checkout, JobStatus
from orders.pipeline import compensation
from orders.pipeline.context import PipelineContext
from orders.pipeline.jobs import JobRef
from orders.pipeline.jobtypes import JOB_TYPES
from orders.pipeline.leases import Claim, close, postpone, reschedule
from orders.pipeline.timeline import record_event

log = logging.getLogger(__name__)


def fail_checkout(
    session: Session,
    taken: Claim,
    ctx: PipelineContext,
    code: str,
    message: str,
    *,
    needs_attention: bool = False,
    trace: str | None = None,
) -> list[JobRef]:
    """Fail the job and its checkout, with compensation (the jobs it adds)."""
    close(session, taken, JobStatus.FAILED, message, trace)
    checkout = _checkout_of(session, taken)
    if checkout is None:
        return []
    return compensation.fail_checkout(
        session, ctx.settings, checkout, code, message, needs_attention=needs_attention
    )


def wait_for_breaker(
    session: Session, taken: Claim, ctx: PipelineContext, exc: GatewayCircuitOpen
) -> list[JobRef]:
    delay = max(ctx.settings.retry_delay_seconds, 1.0)
    postpone(session, taken, delay, exc.message)
    checkout = _checkout_of(session, taken)
    if checkout is not None:
        record_event(
            session, checkout, f"Payment gateway unavailable (circuit open); waiting {delay:g} s"
        )
    return [JobRef(taken.job_id, taken.type, delay)]


def give_up(
    session: Session,
    taken: Claim,
    ctx: PipelineContext,
    message: str,
    code: str = "processing_error",
    trace: str | None = None,
) -> list[JobRef]:
    """The last attempt failed: end the job, and the checkout if it was a checkout step
    (in the caller's transaction; :class:`LeaseLost` if the job is no longer ours)."""
    step = JOB_TYPES[taken.type].runs
    what = f"{taken.type} failed after {taken.attempt} attempts: {message}"
    if step.give_up is None:
        return fail_checkout(session, taken, ctx, code, what, needs_attention=True, trace=trace)
    close(session, taken, JobStatus.FAILED, what, trace)
    checkout = _checkout_of(session, taken)
    step.give_up(session, taken, checkout, message)
    return []


def retry_or_give_up(
    session: Session, taken: Claim, ctx: PipelineContext, exc: Exception
) -> tuple[list[JobRef], str]:
    trace = "".join(traceback.format_exception(exc))
    message = exc.message if isinstance(exc, ShopError) else f"{type(exc).__name__}: {exc}"
    if not isinstance(exc, ShopError):
        log.error("job %s (%s) raised unexpectedly:\n%s", taken.job_id, taken.type, trace)
    if taken.final:
        code = exc.code if isinstance(exc, ShopError) and exc.retryable else "processing_error"
        return give_up(session, taken, ctx, message, code, trace), "failed"
    delay = JOB_TYPES[taken.type].retry_delay(ctx.settings, taken.attempt)
    reschedule(session, taken, delay, message, trace)
    checkout = _checkout_of(session, taken)
    if checkout is not None:
        record_event(
            session,
            checkout,
            f"{taken.type} attempt {taken.attempt}/{taken.max_attempts} failed ({message}); "
            f"retrying in {delay:g} s",
        )
    return [JobRef(taken.job_id, taken.type, delay)], "retrying"


def _checkout_of(session: Session, taken: Claim) -> Checkout | None:
    """The job's checkout, if it is a checkout's job (the session's copy when it has one)."""
    return session.get(Checkout, taken.checkout_id) if taken.checkout_id else None
