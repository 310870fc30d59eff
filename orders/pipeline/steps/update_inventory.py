"""Turn the stock holds into sales, complete the checkouts, record their emails.

The held units are counted as sold (holds a re-run finds closed already count for
nothing), products at or below ``LOW_STOCK_THRESHOLD`` are flagged in the timeline,
the checkout moves to ``completed`` with its order, and the confirmation email is
recorded for a follow-up job: a mail failure never fails or delays an order.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session, selectinload

from orders.db import utcnow
from orders.errors import LeaseLost, ShopError
from orders.models import CheckoutStage, EventType, HoldStatus, Order
from orders.models.tables import HOLDS, PRODUCTS
from orders.pipeline.compensation import apply_units
from orders.pipeline.context import PipelineContext
from orders.pipeline.emails import order_confirmations
from orders.pipeline.jobs import JobRef, next_jobs
from orders.pipeline.step import Item, Step, checkouts_of
from orders.pipeline.timeline import Event, move_all, record_events


def call(_item: Item, ctx: PipelineContext) -> None:
    ctx.simulate_step_latency("inventory")


def write(session: Session, items: Sequence[Item], ctx: PipelineContext) -> list[JobRef]:
    checkouts = checkouts_of(items)
    ids = [checkout.id for checkout in checkouts]
    closed = session.execute(
        update(HOLDS)
        .where(HOLDS.c.checkout_id.in_(ids), HOLDS.c.status == HoldStatus.HELD)
        .values(status=HoldStatus.SOLD, closed_at=utcnow())
        .returning(HOLDS.c.checkout_id, HOLDS.c.product_id, HOLDS.c.quantity)
    ).all()
    events: list[Event] = []
    if closed:  # the sale leaves stock as it is: read it before the counters change
        low = {
            row.id: f"Low stock: {row.sku} has {row.stock} left"
            for row in session.execute(
                select(PRODUCTS.c.id, PRODUCTS.c.sku, PRODUCTS.c.stock).where(
                    PRODUCTS.c.id.in_(sorted({row.product_id for row in closed})),
                    PRODUCTS.c.stock <= ctx.settings.low_stock_threshold,
                )
            )
        }
        by_id = {checkout.id: checkout for checkout in checkouts}
        warned = sorted({(r.checkout_id, r.product_id) for r in closed if r.product_id in low})
        events += [
            (by_id[checkout], low[product], EventType.INFO, None) for checkout, product in warned
        ]
    record_events(session, events)
    orders = {
        order.checkout_id: order
        for order in session.scalars(
            select(Order).where(Order.checkout_id.in_(ids)).options(selectinload(Order.lines))
        )
    }
    missing = [checkout.public_id for checkout in checkouts if checkout.id not in orders]
    if missing:
        raise ShopError(f"no order for checkout {', '.join(missing)}")
    moved = move_all(
        session, checkouts, CheckoutStage.UPDATING_INVENTORY, CheckoutStage.COMPLETED, orders
    )
    if len(moved) != len(checkouts):
        raise LeaseLost("a checkout changed under us")
    emails = order_confirmations(session, ctx.settings, [(c, orders[c.id]) for c in checkouts])
    jobs = next_jobs(session, ctx.settings, items[0].claim.type, checkouts, emails)
    # the products' sold counters last: every checkout's stock moves lock these few rows
    # until the commit, so the transaction holds them for the fewest round trips
    apply_units(session, [(row.product_id, row.quantity) for row in closed], HoldStatus.SOLD)
    return jobs


STEP = Step(write, call=call)
