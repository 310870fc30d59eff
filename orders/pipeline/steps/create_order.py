"""Create the order of a checkout whose payment was captured (once per checkout)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from orders.db import utcnow
from orders.infra.bulk import insert_rows
from orders.models import Checkout, EventType
from orders.models.tables import ORDER_LINES, ORDERS
from orders.pipeline.context import PipelineContext
from orders.pipeline.jobs import JobRef, next_jobs
from orders.pipeline.step import Item, Step, checkouts_of, load_lines
from orders.pipeline.timeline import record_events


def call(_item: Item, ctx: PipelineContext) -> None:
    ctx.simulate_step_latency("order")


def write(session: Session, items: Sequence[Item], ctx: PipelineContext) -> list[JobRef]:
    checkouts = checkouts_of(items)
    made = set(  # a re-run: these have their order already
        session.scalars(
            select(ORDERS.c.checkout_id).where(ORDERS.c.checkout_id.in_([c.id for c in checkouts]))
        )
    )
    new = [checkout for checkout in checkouts if checkout.id not in made]
    # the orders, then their lines: two statements for the batch (the ORM's unit of
    # work spent more CPU than the statements it sent)
    added = insert_rows(
        session, ORDERS, [order_row(c) for c in new], (ORDERS.c.checkout_id, ORDERS.c.id)
    )
    order_ids: dict[int, int] = {row[0]: row[1] for row in added}
    insert_rows(session, ORDER_LINES, [row for c in new for row in line_rows(c, order_ids[c.id])])
    record_events(
        session,
        [(c, f"Order {order_number_for(c)} created", EventType.INFO, None) for c in new],
    )
    return next_jobs(session, ctx.settings, items[0].claim.type, checkouts)


def order_number_for(checkout: Checkout) -> str:
    """Deterministic (so a re-run makes the same number), short and unguessable."""
    digest = hashlib.sha256(checkout.public_id.encode()).digest()
    return "ORD-" + base64.b32encode(digest).decode()[:10]


def order_row(checkout: Checkout) -> dict[str, Any]:
    """The order of a checkout whose payment was captured (a row to insert)."""
    return {
        "order_number": order_number_for(checkout),
        "checkout_id": checkout.id,
        "email": checkout.email,
        "customer_id": checkout.customer_id,
        "subtotal_cents": checkout.subtotal_cents,
        "discount_cents": checkout.discount_cents,
        "total_cents": checkout.total_cents,
        "created_at": utcnow(),
    }


def line_rows(checkout: Checkout, order_id: int) -> list[dict[str, Any]]:
    """The order's lines: the checkout's, as the shopper saw them (rows to insert)."""
    return [
        {
            "order_id": order_id,
            "product_id": line.product_id,
            "sku": line.sku,
            "name": line.name,
            "quantity": line.quantity,
            "unit_price_cents": line.unit_price_cents,
        }
        for line in checkout.lines
    ]


STEP = Step(write, load_lines, call)
