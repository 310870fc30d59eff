"""Read models for clients: checkout status, order detail, timelines (from the database)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from orders.domain.validation import plausible_id
from orders.errors import NotFound
from orders.models import Checkout, CheckoutEvent, Order, Payment
from orders.pipeline.timeline import status_payload


def iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="milliseconds") + "Z" if value else None


def find_checkout(session: Session, public_id: str) -> Checkout:
    checkout = None
    if plausible_id(public_id):
        checkout = session.scalar(select(Checkout).where(Checkout.public_id == public_id))
    if checkout is None:
        raise _unknown(public_id)
    return checkout


def find_checkout_and_latest_event(session: Session, public_id: str) -> tuple[Checkout, int]:
    """The checkout and the id of its latest timeline row (0: none), read by one
    statement, so from one snapshot: the state is the one that row recorded."""
    latest = (
        select(func.max(CheckoutEvent.id))
        .where(CheckoutEvent.checkout_id == Checkout.id)
        .scalar_subquery()
    )
    row = None
    if plausible_id(public_id):
        row = session.execute(
            select(Checkout, latest).where(Checkout.public_id == public_id)
        ).first()
    if row is None:
        raise _unknown(public_id)
    return row[0], row[1] or 0


def _unknown(public_id: str) -> NotFound:
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


def order_detail(session: Session, order_number: str) -> dict[str, Any]:
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
    payments = session.scalars(
        select(Payment).where(Payment.checkout_id == order.checkout_id).order_by(Payment.id)
    )
    return {
        "orderNumber": order.order_number,
        "status": checkout.status.value,
        "email": order.email,
        "totalCents": order.total_cents,
        "subtotalCents": order.subtotal_cents,
        "discountCents": order.discount_cents,
        "jobId": checkout.public_id,
        "createdAt": iso(order.created_at),
        "items": [
            {
                "sku": line.sku,
                "name": line.name,
                "quantity": line.quantity,
                "unitPriceCents": line.unit_price_cents,
            }
            for line in order.lines
        ],
        "payments": [
            {
                "status": p.status.value,
                "amountCents": p.amount_cents,
                "gatewayRef": p.gateway_ref,
                "idempotencyKey": p.idempotency_key,
            }
            for p in payments
        ],
        "timeline": [
            {"id": e.id, "type": e.type.value, "message": e.message, "at": iso(e.created_at)}
            for e in timeline(session, checkout.id)
        ],
    }
