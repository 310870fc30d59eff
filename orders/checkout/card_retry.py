"""Retrying a declined payment with another card (``POST /api/payments``)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from orders.config import Settings
from orders.domain.validation import validate_payment_token
from orders.errors import Conflict
from orders.models import CheckoutStage
from orders.pipeline.jobs import Dispatch, new_job, send_after_commit
from orders.pipeline.jobtypes import RESERVE_STOCK
from orders.pipeline.timeline import move_checkout
from orders.shop.status import find_checkout


def retry_payment(
    session: Session, settings: Settings, public_id: str, token: object, dispatch: Dispatch
) -> str:
    """Put a checkout that failed with ``payment_declined`` back in the queue.

    Stock is held again from scratch (it was released on decline), so the stock may
    be gone by now: then the checkout ends ``out_of_stock`` as usual. A checkout takes
    at most ``MAX_PAYMENT_ATTEMPTS`` cards (the first included): trying card after card
    on one checkout is how stolen card numbers are tested.
    """
    token = validate_payment_token(token)
    checkout = find_checkout(session, public_id)
    if checkout.stage is not CheckoutStage.FAILED or checkout.error_code != "payment_declined":
        session.rollback()
        raise Conflict(
            f"checkout {public_id} is {checkout.status.value}"
            + (f" ({checkout.error_code})" if checkout.error_code else "")
            + "; only a checkout whose payment was declined can be retried"
        )
    if checkout.payment_attempt >= settings.max_payment_attempts:
        session.rollback()
        raise Conflict(
            f"checkout {public_id} has had {checkout.payment_attempt} payment attempts, the "
            "most one checkout may have; start a new checkout",
            code="payment_attempts_exhausted",
        )
    checkout.payment_attempt += 1
    checkout.payment_token = token
    move_checkout(session, checkout, CheckoutStage.QUEUED, "Retrying with another card")
    refs = (new_job(session, settings, RESERVE_STOCK, checkout=checkout),)
    session.commit()
    send_after_commit(session, refs, dispatch)
    return checkout.status.value
