"""Read models for clients: checkout status, order detail, timelines (from the database)."""

from __future__ import annotations

import hmac
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from orders.domain.disclosure import shopper_error
from orders.domain.states import DESCRIPTION
from orders.domain.validation import plausible_id
from orders.errors import NotFound
from orders.models import Checkout, CheckoutEvent, CheckoutStage, EventType, Order, Payment
from orders.pipeline.timeline import status_payload


def iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="milliseconds") + "Z" if value else None


def find_checkout(session: Session, public_id: str) -> Checkout:
    checkout = None
    if plausible_id(public_id):
        checkout = session.scalar(select(Checkout).where(Checkout.public_id == public_id))
    if checkout is None:
        raise unknown_job(public_id)
    return checkout


def unknown_job(public_id: str) -> NotFound:
    return NotFound(f"no checkout job with id {public_id}", code="job_not_found")


def checkout_status(session: Session, public_id: str) -> dict[str, Any]:
    return status_payload(session, find_checkout(session, public_id))


def timeline(session: Session, checkout_id: int, after_id: int = 0) -> list[CheckoutEvent]:
    return list(
        session.scalars(
            select(CheckoutEvent)
            .where(CheckoutEvent.checkout_id == checkout_id, CheckoutEvent.id > after_id)
            .order_by(CheckoutEvent.id)
        )
    )


def order_detail(
    session: Session,
    order_number: str,
    *,
    job_id: str | None = None,
    session_ids: Sequence[str | None] = (),
) -> dict[str, Any]:
    """The order as its shopper may see it.

    The order number alone (printed on receipts, read out on the phone) shows only
    the public view: number, status, date. The full view (email, items, payments,
    the timeline in shopper's words) needs proof of being the shopper: the checkout's
    secret id (``job_id``, what the checkout answered) or the session it was placed
    from (``session_ids``). Gateway references, keys and operators' notes are never
    shown here: they are on the ops dashboard.
    """
    order = None
    if plausible_id(order_number):
        order = session.scalar(
            select(Order)
            .where(Order.order_number == order_number)
            .options(selectinload(Order.lines))
        )
    if order is None:
        raise NotFound(f"no order {order_number}", code="order_not_found")
    checkout = session.get(Checkout, order.checkout_id)
    assert checkout is not None
    public = {
        "orderNumber": order.order_number,
        "status": checkout.status.value,
        "createdAt": iso(order.created_at),
    }
    if not is_shopper(checkout, job_id, session_ids):
        return {**public, "view": "public"}
    payments = session.scalars(
        select(Payment).where(Payment.checkout_id == order.checkout_id).order_by(Payment.id)
    )
    return {
        **public,
        "view": "full",
        "email": order.email,
        "totalCents": order.total_cents,
        "subtotalCents": order.subtotal_cents,
        "discountCents": order.discount_cents,
        "jobId": checkout.public_id,
        "items": [
            {
                "sku": line.sku,
                "name": line.name,
                "quantity": line.quantity,
                "unitPriceCents": line.unit_price_cents,
            }
            for line in order.lines
        ],
        "payments": [{"status": p.status.value, "amountCents": p.amount_cents} for p in payments],
        "timeline": shopper_timeline(timeline(session, checkout.id)),
    }


def is_shopper(checkout: Checkout, job_id: str | None, session_ids: Sequence[str | None]) -> bool:
    """Does the caller hold the checkout's secret id, or the session it was placed from?"""
    if job_id and hmac.compare_digest(job_id.encode(), checkout.public_id.encode()):
        return True
    placed_from = (checkout.session_id or "").encode()
    return bool(placed_from) and any(
        hmac.compare_digest(placed_from, candidate.encode())
        for candidate in session_ids
        if candidate
    )


def shopper_timeline(events: Sequence[CheckoutEvent]) -> list[dict[str, Any]]:
    """The checkout's moves in the words shoppers see on the progress page.

    Only state changes, each worded from the status it recorded (never the row's
    message: that one is for operators and may quote a gateway reference, a key or
    a mail server's error).
    """
    shown = []
    for event in events:
        if event.type is EventType.INFO:
            continue
        data = json.loads(event.status_json)
        if data.get("status") == "failed":
            message = shopper_error(data.get("code"), data.get("error"))
        elif data.get("status") == "completed":
            message = DESCRIPTION[CheckoutStage.COMPLETED]
        else:
            message = str(data.get("message") or DESCRIPTION[event.stage])
        shown.append(
            {
                "id": event.id,
                "type": event.type.value,
                "message": message,
                "at": iso(event.created_at),
            }
        )
    return shown
