"""Steps for many checkouts at once (see :mod:`orders.services.batch`).

Each does what its single-checkout step (:mod:`orders.services.pipeline`,
:func:`orders.services.emails.send_email`) does, for every checkout of the batch, in
the caller's one transaction: close every job under its lease, write every effect
with set-wise statements, add every follow-up job. It returns those jobs and the
claims it left to run alone (an email whose send failed).
Where a checkout is off the common path (a re-run finds holds or an order already
there, a product runs out) the step raises instead of deciding: the batch rolls
back and each job runs alone, where the single step knows what to do.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import NamedTuple

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session, selectinload

from orders.db import utcnow
from orders.errors import OutOfStock
from orders.infra.gateway import ChargeResult
from orders.jobtypes import (
    CREATE_ORDER,
    PROCESS_PAYMENT,
    RESERVE_STOCK,
    SEND_ORDER_CONFIRMATION,
    UPDATE_INVENTORY,
)
from orders.models import (
    Checkout,
    CheckoutStage,
    Email,
    EmailStatus,
    EventType,
    HoldStatus,
    Job,
    JobStatus,
    Order,
)
from orders.models.tables import HOLDS, PRODUCTS
from orders.services.batch_leases import close_all
from orders.services.compensation import apply_units, payment_key
from orders.services.context import PipelineContext
from orders.services.emails import deliver, delivered_message, mark_delivered, order_confirmation
from orders.services.jobs import new_jobs
from orders.services.leases import Claim
from orders.services.pipeline import decline, hold_rows, new_order, payment_row
from orders.services.timeline import Event, move_all, record_events

log = logging.getLogger(__name__)


class NotCommonPath(Exception):
    """A checkout of the batch needs the single step's judgement: run each alone."""


class Done(NamedTuple):
    jobs: list[Job]  # the follow-ups (the caller sends them after commit)
    alone: tuple[Claim, ...] = ()  # claims to run alone, after commit
    # job id -> what its step raised here (a gateway error): the job runs alone with it
    # as its step's outcome (a retry, a wait for the breaker), the call not made again
    raised: Mapping[str, Exception] = MappingProxyType({})  # (an immutable default)


def _ids(checkouts: Sequence[Checkout]) -> list[int]:
    return [checkout.id for checkout in checkouts]


def reserve_all(
    session: Session, claims: Sequence[Claim], checkouts: Sequence[Checkout], ctx: PipelineContext
) -> Done:
    """Hold every checkout's units: one UPDATE per product (in id order, as the single
    step locks them), all or none."""
    close_all(session, claims, JobStatus.COMPLETED)
    held = session.scalar(
        select(HOLDS.c.id)
        .where(HOLDS.c.checkout_id.in_(_ids(checkouts)), HOLDS.c.status == HoldStatus.HELD)
        .limit(1)
    )
    if held is not None:
        raise NotCommonPath("a checkout of the batch holds stock already (a re-run)")
    units: dict[int, int] = defaultdict(int)
    for checkout in checkouts:
        for line in checkout.lines:
            units[line.product_id] += line.quantity
    for product_id in sorted(units):
        taken = session.execute(
            update(PRODUCTS)
            .where(PRODUCTS.c.id == product_id, PRODUCTS.c.stock >= units[product_id])
            .values(stock=PRODUCTS.c.stock - units[product_id])
        )
        if taken.rowcount != 1:  # type: ignore[attr-defined]
            raise OutOfStock(f"product {product_id} has fewer than {units[product_id]} units")
    hold_seconds = ctx.settings.stock_hold_seconds
    holds = [row for c in checkouts for row in hold_rows(c, c.lines, hold_seconds)]
    session.execute(insert(HOLDS), holds)
    return Done(new_jobs(session, ctx.settings, PROCESS_PAYMENT, checkouts))


def charge_all(
    session: Session, claims: Sequence[Claim], checkouts: Sequence[Checkout], ctx: PipelineContext
) -> Done:
    """Charge every checkout (one gateway call each, by its idempotency key, with no
    transaction open), then record every payment. A declined card fails its checkout as
    the single step does; a call that raised (a gateway error, the breaker open) leaves
    its job to run alone with that outcome. The payments were read with the claims."""
    keys = {checkout.id: payment_key(checkout) for checkout in checkouts}
    if any(p.idempotency_key == keys[c.id] for c in checkouts for p in c.payments):
        raise NotCommonPath("a checkout of the batch has its payment already (a re-run)")
    charged: list[tuple[Claim, Checkout, ChargeResult]] = []
    raised: dict[str, Exception] = {}
    for claim, checkout in zip(claims, checkouts, strict=True):
        try:
            result = ctx.gateway.charge(
                amount_cents=checkout.total_cents,
                token=checkout.payment_token,
                idempotency_key=keys[checkout.id],
            )
        except Exception as exc:  # noqa: BLE001 (recorded by the single path's handling)
            raised[claim.job_id] = exc
            continue
        charged.append((claim, checkout, result))
    close_all(session, [claim for claim, _, _ in charged], JobStatus.COMPLETED)
    session.add_all(
        payment_row(checkout, keys[checkout.id], result) for _, checkout, result in charged
    )
    captured = [checkout for _, checkout, result in charged if result.captured]
    jobs: list[Job] = []
    for _, checkout, result in charged:
        if not result.captured:  # rare: the single step's own words and compensation
            jobs += decline(session, ctx, checkout, result.decline_reason)
    record_events(
        session,
        [(c, f"Payment of {c.total_cents} cents captured", _INFO, None) for c in captured],
    )
    jobs += new_jobs(session, ctx.settings, CREATE_ORDER, captured)
    alone = tuple(claim for claim in claims if claim.job_id in raised)
    return Done(jobs, alone, raised)


def create_orders(
    session: Session, claims: Sequence[Claim], checkouts: Sequence[Checkout], ctx: PipelineContext
) -> Done:
    """Create every checkout's order (the ORM inserts them, and their lines, in bulk)."""
    close_all(session, claims, JobStatus.COMPLETED)
    if session.scalar(select(Order.id).where(Order.checkout_id.in_(_ids(checkouts))).limit(1)):
        raise NotCommonPath("a checkout of the batch has its order already (a re-run)")
    orders = [new_order(checkout, checkout.lines) for checkout in checkouts]
    session.add_all(orders)
    session.flush()
    record_events(
        session,
        [
            (checkout, f"Order {order.order_number} created", _INFO, None)
            for checkout, order in zip(checkouts, orders, strict=True)
        ],
    )
    return Done(new_jobs(session, ctx.settings, UPDATE_INVENTORY, checkouts))


def sell_all(
    session: Session, claims: Sequence[Claim], checkouts: Sequence[Checkout], ctx: PipelineContext
) -> Done:
    """Count every checkout's held units as sold, complete the checkouts, record their
    confirmation emails."""
    close_all(session, claims, JobStatus.COMPLETED)
    ids = _ids(checkouts)
    closed = session.execute(
        update(HOLDS)
        .where(HOLDS.c.checkout_id.in_(ids), HOLDS.c.status == HoldStatus.HELD)
        .values(status=HoldStatus.SOLD, closed_at=utcnow())
        .returning(HOLDS.c.checkout_id, HOLDS.c.product_id, HOLDS.c.quantity)
    ).all()
    sold = apply_units(session, [(row.product_id, row.quantity) for row in closed], HoldStatus.SOLD)
    events: list[Event] = []
    if sold:
        low = {
            row.id: f"Low stock: {row.sku} has {row.stock} left"
            for row in session.execute(
                select(PRODUCTS.c.id, PRODUCTS.c.sku, PRODUCTS.c.stock).where(
                    PRODUCTS.c.id.in_(sorted(sold)),
                    PRODUCTS.c.stock <= ctx.settings.low_stock_threshold,
                )
            )
        }
        by_id = {checkout.id: checkout for checkout in checkouts}
        warned = sorted({(r.checkout_id, r.product_id) for r in closed if r.product_id in low})
        events += [(by_id[checkout], low[product], _INFO, None) for checkout, product in warned]
    record_events(session, events)
    orders = {
        order.checkout_id: order
        for order in session.scalars(
            select(Order).where(Order.checkout_id.in_(ids)).options(selectinload(Order.lines))
        )
    }
    if len(orders) != len(checkouts):
        raise NotCommonPath("a checkout of the batch has no order")
    moved = move_all(
        session, checkouts, CheckoutStage.UPDATING_INVENTORY, CheckoutStage.COMPLETED, orders
    )
    if len(moved) != len(checkouts):
        raise NotCommonPath("a checkout of the batch changed under us")
    emails = [order_confirmation(session, ctx.settings, c, orders[c.id]) for c in checkouts]
    return Done(new_jobs(session, ctx.settings, SEND_ORDER_CONFIRMATION, checkouts, emails))


def send_all(
    session: Session, claims: Sequence[Claim], checkouts: Sequence[Checkout], ctx: PipelineContext
) -> Done:
    """Send every email (no transaction open meanwhile), then record them in one. An
    email whose send failed is left to run alone (its retry); a job whose lease was
    lost meanwhile is left out (its new owner records it). The emails were read with
    the claims (:mod:`orders.services.batch`): the session has them."""
    emails = {claim.email_id: session.get(Email, claim.email_id) for claim in claims}
    if any(e is None or e.status is not EmailStatus.PENDING for e in emails.values()):
        raise NotCommonPath("an email of the batch went out already (a re-run)")
    sent: list[tuple[Claim, Checkout, EmailStatus]] = []
    failed: list[Claim] = []
    for claim, checkout in zip(claims, checkouts, strict=True):
        try:
            sent.append((claim, checkout, deliver(ctx, emails[claim.email_id])))
        except Exception as exc:  # noqa: BLE001 (its retry, alone, says why)
            log.info("email %s of a batch failed (%s); its job runs alone", claim.email_id, exc)
            failed.append(claim)
    closed = close_all(session, [c for c, _, _ in sent], JobStatus.COMPLETED, strict=False)
    ours = {claim.job_id for claim in closed}
    done = [(claim, checkout, status) for claim, checkout, status in sent if claim.job_id in ours]
    for status in {status for _, _, status in done}:
        mark_delivered(session, [c.email_id for c, _, s in done if s is status], status)
    events: list[Event] = [
        (checkout, delivered_message(emails[claim.email_id], status), _INFO, None)
        for claim, checkout, status in done
    ]
    record_events(session, events)
    return Done([], tuple(failed))


_INFO = EventType.INFO

STEPS = {
    RESERVE_STOCK.name: reserve_all,
    PROCESS_PAYMENT.name: charge_all,
    CREATE_ORDER.name: create_orders,
    UPDATE_INVENTORY.name: sell_all,
    SEND_ORDER_CONFIRMATION.name: send_all,
}
