"""Run one step for many jobs at once: the orders queue's fast path under load.

A message for a job of the orders queue (reserve-stock, create-order,
update-inventory) claims its own job and, while more of that type wait, up to
``PIPELINE_BATCH`` of them in all (the oldest first). Their checkouts enter the step
in one statement; then one transaction closes every job, writes every effect with
set-wise statements (:mod:`orders.services.pipeline_batch`) and adds every follow-up
job. A batch of one costs what the single path does; a batch of twenty costs a few
statements more, not twenty times as many. The later messages of jobs a batch took
find them taken and claim whatever else waits (or nothing).

Only the common path is batched. A job on its second attempt, a checkout that is not
in the step's previous stage, and, if the set-wise step raises (a product runs out,
a lease was lost, a re-run finds its effects), every job of the batch run alone
through :mod:`orders.services.runner`, exactly as if each had come by itself: the
batch's claims and step entries are committed first, its step's writes only all
together, so a batch that fails has changed nothing the single path would not.

Steps with simulated work are never batched: their latency stands for work done per
checkout, and one wait for many would make the pipeline look faster than it is.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from orders.config import Settings
from orders.errors import LeaseLost, OutOfStock
from orders.jobtypes import CREATE_ORDER, JOB_TYPES, RESERVE_STOCK, UPDATE_INVENTORY
from orders.logcontext import bind_checkout
from orders.models import Checkout, CheckoutStage
from orders.services import pipeline_batch
from orders.services.batch_leases import claim_batch
from orders.services.context import PipelineContext
from orders.services.jobs import ref, send_after_commit
from orders.services.leases import Claim
from orders.services.runner import run_claimed, run_entered, run_job
from orders.services.timeline import EVENTS_RECORDED, move_all

log = logging.getLogger(__name__)

# job type -> (the stage its checkouts come from, the step's simulated work)
_BATCHED = {
    RESERVE_STOCK.name: (CheckoutStage.QUEUED, "validate"),
    CREATE_ORDER.name: (CheckoutStage.CHARGING_PAYMENT, "order"),
    UPDATE_INVENTORY.name: (CheckoutStage.CREATING_ORDER, "inventory"),
}


def batchable(settings: Settings, job_type: str) -> bool:
    """Does ``job_type`` run through :func:`run_batch` with these settings?"""
    batched = _BATCHED.get(job_type)
    if batched is None or settings.pipeline_batch < 2:
        return False
    return settings.step_latency_ms(batched[1])[1] <= 0


def run_batch(
    session: Session,
    job_type: str,
    job_ids: Sequence[str],
    ctx: PipelineContext,
    *,
    unless_paused: bool = False,
) -> list[str]:
    """Claim ``job_ids`` and more waiting jobs of ``job_type``, run their step; the
    outcome of each job claimed (none: nothing was waiting)."""
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
        checkouts = _load(session, claims)
        source, _work = _BATCHED[job_type]
        common = [
            claim
            for claim in claims
            if claim.attempt == 1
            and claim.checkout_id in checkouts
            and checkouts[claim.checkout_id].stage is source
        ]
        stage = JOB_TYPES[job_type].stage
        assert stage is not None
        entered = move_all(session, [checkouts[c.checkout_id] for c in common], source, stage)
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
            outcomes.append(_alone(session, claim, checkouts, ctx, entered=False))
    return outcomes


def _load(session: Session, claims: Sequence[Claim]) -> dict[int, Checkout]:
    """The claims' checkouts and their lines (two SELECTs), in the claim's transaction."""
    ids = [claim.checkout_id for claim in claims if claim.checkout_id is not None]
    query = select(Checkout).where(Checkout.id.in_(ids)).options(selectinload(Checkout.lines))
    return {checkout.id: checkout for checkout in session.scalars(query)}


def _run_set(
    session: Session,
    job_type: str,
    batch: list[Claim],
    checkouts: dict[int, Checkout],
    ctx: PipelineContext,
) -> list[str]:
    members = [checkouts[claim.checkout_id] for claim in batch]  # type: ignore[index]
    try:
        jobs = pipeline_batch.STEPS[job_type](session, batch, members, ctx)
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
        return [_alone(session, claim, checkouts, ctx, entered=True) for claim in batch]
    send_after_commit(session, [ref(job) for job in jobs], ctx.dispatch)
    _publish(session, ctx, members)
    if log.isEnabledFor(logging.INFO):
        for claim, checkout in zip(batch, members, strict=True):
            with bind_checkout(checkout.public_id, claim.job_id, claim.type):
                log.info(
                    "job %s (%s) attempt %d: completed (in a batch of %d)",
                    claim.job_id,
                    claim.type,
                    claim.attempt,
                    len(batch),
                )
    return ["completed"] * len(batch)


def _alone(
    session: Session,
    claim: Claim,
    checkouts: dict[int, Checkout],
    ctx: PipelineContext,
    *,
    entered: bool,
) -> str:
    """Run one claimed job by the single path (``entered``: its checkout is in the step)."""
    checkout = checkouts.get(claim.checkout_id) if claim.checkout_id is not None else None
    with bind_checkout(checkout.public_id if checkout else None, claim.job_id, claim.type):
        if entered:
            outcome = run_entered(session, claim, checkout, ctx)
        else:
            outcome = run_claimed(session, claim, checkout, ctx)
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
