"""Create the order of a checkout whose payment was captured (once per checkout)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from orders.models import Checkout, CheckoutLine, EventType, Job, Order, OrderLine
from orders.pipeline.context import PipelineContext
from orders.pipeline.jobs import next_jobs
from orders.pipeline.step import Item, Step, checkouts_of, load_lines
from orders.pipeline.timeline import record_events


def call(_item: Item, ctx: PipelineContext) -> None:
    ctx.simulate_step_latency("order")


def write(session: Session, items: Sequence[Item], ctx: PipelineContext) -> list[Job]:
    checkouts = checkouts_of(items)
    made = set(  # a re-run: these have their order already
        session.scalars(
            select(Order.checkout_id).where(Order.checkout_id.in_([c.id for c in checkouts]))
        )
    )
    new = [(checkout, new_order(checkout, checkout.lines)) for checkout in checkouts]
    new = [(checkout, order) for checkout, order in new if checkout.id not in made]
    session.add_all(order for _, order in new)
    session.flush()  # the ORM inserts the orders and their lines in bulk
    record_events(
        session,
        [(c, f"Order {order.order_number} created", EventType.INFO, None) for c, order in new],
    )
    return next_jobs(session, ctx.settings, items[0].claim.type, checkouts)


def order_number_for(checkout: Checkout) -> str:
    """Deterministic (so a re-run makes the same number), short and unguessable."""
    digest = hashlib.sha256(checkout.public_id.encode()).digest()
    return "ORD-" + base64.b32encode(digest).decode()[:10]


def new_order(checkout: Checkout, lines: Iterable[CheckoutLine]) -> Order:
    """The order of a checkout whose payment was captured (not yet added)."""
    return Order(
        order_number=order_number_for(checkout),
        checkout_id=checkout.id,
        email=checkout.email,
        customer_id=checkout.customer_id,
        subtotal_cents=checkout.subtotal_cents,
        discount_cents=checkout.discount_cents,
        total_cents=checkout.total_cents,
        lines=[
            OrderLine(
                product_id=line.product_id,
                sku=line.sku,
                name=line.name,
                quantity=line.quantity,
                unit_price_cents=line.unit_price_cents,
            )
            for line in lines
        ],
    )


STEP = Step(write, load_lines, call)
