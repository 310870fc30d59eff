"""Send a recorded email once (order confirmations and cart recovery emails).

An email that went out already (a re-run) is not sent again. When no SMTP server is
configured the message is kept (``stored``) and the ops dashboard shows it. After
the last attempt the email is marked failed: the order is unaffected.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from orders.models import Checkout, Email, EmailStatus, EventType
from orders.pipeline.context import PipelineContext
from orders.pipeline.emails import deliver, delivered_message, mark_delivered
from orders.pipeline.jobs import JobRef
from orders.pipeline.leases import Claim
from orders.pipeline.step import Item, Step
from orders.pipeline.timeline import Event, record_event, record_events

GONE_OUT = (EmailStatus.SENT, EmailStatus.STORED)


def load(session: Session, items: Sequence[Item]) -> None:
    """Each job's email, in the claim's transaction."""
    ids = [item.claim.email_id for item in items]
    emails: dict[int | None, Email] = {
        email.id: email for email in session.scalars(select(Email).where(Email.id.in_(ids)))
    }
    for item in items:
        item.loaded = emails.get(item.claim.email_id)
        assert item.loaded is not None, f"job {item.claim.job_id} has no email"


def call(item: Item, ctx: PipelineContext) -> EmailStatus | None:
    """Send (or store) the email; None if it went out already."""
    email: Email = item.loaded
    if email.status in GONE_OUT:
        return None
    ctx.simulate_step_latency("email")
    return deliver(ctx, email)


def write(session: Session, items: Sequence[Item], _ctx: PipelineContext) -> list[JobRef]:
    sent = [item for item in items if item.result is not None]
    for status in {item.result for item in sent}:
        mark_delivered(session, [item.loaded.id for item in sent if item.result is status], status)
    events: list[Event] = [
        (item.checkout, delivered_message(item.loaded, item.result), EventType.INFO, None)
        for item in sent
        if item.checkout is not None
    ]
    record_events(session, events)
    return []


def give_up(session: Session, claim: Claim, checkout: Checkout | None, error: str) -> None:
    """After the last attempt: mark the email failed; the order is unaffected."""
    session.execute(
        update(Email)
        .where(Email.id == claim.email_id)
        .values(status=EmailStatus.FAILED)
        .execution_options(synchronize_session=False)
    )
    if checkout is not None:
        record_event(
            session, checkout, f"Email could not be sent after {claim.attempt} attempts: {error}"
        )


STEP = Step(write, load, call, give_up)
