"""Hold the checkout's units: stock before money.

Every product's units are taken with one conditional ``UPDATE ... WHERE stock >=
units`` (in product id order, the one lock order of every stock move), for all the
items at once and sent together, as the write's last statements; a product that runs
short fails the set, and written one by one the checkout that asked too much fails
``out_of_stock``, naming the product, with nothing held.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import timedelta

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from orders.db import rowcount, utcnow
from orders.errors import OutOfStock
from orders.infra.bulk import insert_rows
from orders.models import Checkout, CheckoutLine, HoldStatus
from orders.models.tables import HOLDS, PRODUCTS
from orders.pipeline.context import PipelineContext
from orders.pipeline.jobs import JobRef, next_jobs
from orders.pipeline.step import Item, Step, checkouts_of, load_lines

# a product's units, if it has them: sent for many products at once, the statements go
# together (one round trip on PostgreSQL, whose driver pipelines them) and their counts
# add up
_TAKE = (
    update(PRODUCTS)
    .where(PRODUCTS.c.id == bindparam("p_id"), PRODUCTS.c.stock >= bindparam("p_units"))
    .values(stock=PRODUCTS.c.stock - bindparam("p_units"))
)


def call(_item: Item, ctx: PipelineContext) -> None:
    ctx.simulate_step_latency("validate")


def write(session: Session, items: Sequence[Item], ctx: PipelineContext) -> list[JobRef]:
    checkouts = checkouts_of(items)
    ids = [checkout.id for checkout in checkouts]
    held = set(  # a re-run: these hold their units already
        session.scalars(
            select(HOLDS.c.checkout_id).where(
                HOLDS.c.checkout_id.in_(ids), HOLDS.c.status == HoldStatus.HELD
            )
        )
    )
    to_hold = [checkout for checkout in checkouts if checkout.id not in held]
    units: dict[int, int] = defaultdict(int)
    named: dict[int, CheckoutLine] = {}
    for checkout in to_hold:
        for line in checkout.lines:
            units[line.product_id] += line.quantity
            named.setdefault(line.product_id, line)
    seconds = ctx.settings.stock_hold_seconds
    rows = [row for checkout in to_hold for row in hold_rows(checkout, checkout.lines, seconds)]
    insert_rows(session, HOLDS, rows)  # one statement for every line
    jobs = next_jobs(session, ctx.settings, items[0].claim.type, checkouts)
    # the products last: every checkout's stock moves lock these few rows until the
    # commit, so the transaction holds them for the fewest round trips
    wanted = [{"p_id": product_id, "p_units": units[product_id]} for product_id in sorted(units)]
    if len(items) > 1 and wanted:  # every product at once; short, written job by job
        if rowcount(session.execute(_TAKE, wanted)) != len(wanted):
            raise OutOfStock(f"{len(items)} checkouts together ask more than is in stock")
        return jobs
    for row in wanted:  # one checkout: the product that runs short is named
        if rowcount(session.execute(_TAKE, row)) != 1:
            line = named[row["p_id"]]
            raise OutOfStock(f"{line.name} ({line.sku}) is out of stock")
    return jobs


def hold_rows(
    checkout: Checkout, lines: Iterable[CheckoutLine], hold_seconds: int
) -> list[dict[str, object]]:
    """The stock holds of a checkout's lines (rows to insert)."""
    now = utcnow()
    expires = now + timedelta(seconds=hold_seconds)
    return [
        {
            "checkout_id": checkout.id,
            "product_id": line.product_id,
            "quantity": line.quantity,
            "status": HoldStatus.HELD,
            "expires_at": expires,
            "created_at": now,
        }
        for line in lines
    ]


STEP = Step(write, load_lines, call)
