"""The checkout pipeline's steps: hold stock, charge, create the order, sell the stock.

Each step is safe to run twice. Slow work (the gateway, simulated latency) happens
with no transaction open; then one transaction closes the job under our lease
(the guard, written first so it takes the row lock), writes the step's effects,
and adds the next job. If the guard fails, everything the step wrote rolls back.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from datetime import timedelta

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from orders.db import utcnow
from orders.errors import OutOfStock
from orders.infra.gateway import ChargeResult
from orders.jobtypes import CREATE_ORDER, PROCESS_PAYMENT, SEND_ORDER_CONFIRMATION, UPDATE_INVENTORY
from orders.models import (
    Checkout,
    CheckoutLine,
    CheckoutStage,
    HoldStatus,
    Job,
    JobStatus,
    Order,
    OrderLine,
    Payment,
    PaymentStatus,
    Product,
    StockHold,
)
from orders.models.tables import HOLDS, PRODUCTS
from orders.services.compensation import close_holds, fail_checkout, payment_key
from orders.services.context import PipelineContext
from orders.services.emails import order_confirmation
from orders.services.jobs import new_job
from orders.services.leases import Claim, close
from orders.services.timeline import move_checkout, record_event


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


def reserve_stock(
    session: Session, claim: Claim, checkout: Checkout, ctx: PipelineContext
) -> list[Job]:
    lines = sorted(checkout.lines, key=lambda line: line.product_id)  # one lock order
    session.commit()
    ctx.simulate_step_latency("validate")
    close(session, claim, JobStatus.COMPLETED)
    already = session.scalar(
        select(StockHold.id).where(
            StockHold.checkout_id == checkout.id, StockHold.status == HoldStatus.HELD
        )
    )
    if already is None:
        for line in lines:
            taken = session.execute(
                update(PRODUCTS)
                .where(PRODUCTS.c.id == line.product_id, PRODUCTS.c.stock >= line.quantity)
                .values(stock=PRODUCTS.c.stock - line.quantity)
            )
            if taken.rowcount != 1:  # type: ignore[attr-defined]
                raise OutOfStock(f"{line.name} ({line.sku}) is out of stock")
        holds = hold_rows(checkout, lines, ctx.settings.stock_hold_seconds)
        session.execute(insert(HOLDS), holds)  # one statement for every line
    return [new_job(session, ctx.settings, PROCESS_PAYMENT, checkout=checkout)]


def process_payment(
    session: Session, claim: Claim, checkout: Checkout, ctx: PipelineContext
) -> list[Job]:
    key = payment_key(checkout)
    # loaded in the claim's transaction (runner.STEPS): no read of its own
    recorded = next((p for p in checkout.payments if p.idempotency_key == key), None)
    session.commit()
    if recorded is None:
        result = ctx.gateway.charge(
            amount_cents=checkout.total_cents, token=checkout.payment_token, idempotency_key=key
        )
        close(session, claim, JobStatus.COMPLETED)
        recorded = payment_row(checkout, key, result)
        session.add(recorded)
    else:
        close(session, claim, JobStatus.COMPLETED)
    if recorded.status is PaymentStatus.DECLINED:
        return decline(session, ctx, checkout, recorded.decline_reason)
    record_event(session, checkout, f"Payment of {checkout.total_cents} cents captured")
    return [new_job(session, ctx.settings, CREATE_ORDER, checkout=checkout)]


def payment_row(checkout: Checkout, key: str, result: ChargeResult) -> Payment:
    """The payment to record for a charge's result."""
    return Payment(
        checkout_id=checkout.id,
        amount_cents=checkout.total_cents,
        status=PaymentStatus.CAPTURED if result.captured else PaymentStatus.DECLINED,
        gateway_ref=result.gateway_ref,
        idempotency_key=key,
        decline_reason=result.decline_reason,
    )


def decline(
    session: Session, ctx: PipelineContext, checkout: Checkout, reason: str | None
) -> list[Job]:
    """A declined card fails its checkout (``payment_declined``), with compensation."""
    words = (reason or "card_declined").replace("_", " ")
    return fail_checkout(
        session, ctx.settings, checkout, "payment_declined", f"Payment declined: {words}"
    )


def create_order(
    session: Session, claim: Claim, checkout: Checkout, ctx: PipelineContext
) -> list[Job]:
    lines = list(checkout.lines)
    session.commit()
    ctx.simulate_step_latency("order")
    close(session, claim, JobStatus.COMPLETED)
    exists = session.scalar(select(Order.id).where(Order.checkout_id == checkout.id))
    if exists is None:
        order = new_order(checkout, lines)
        session.add(order)
        session.flush()
        record_event(session, checkout, f"Order {order.order_number} created")
    return [new_job(session, ctx.settings, UPDATE_INVENTORY, checkout=checkout)]


def update_inventory(
    session: Session, claim: Claim, checkout: Checkout, ctx: PipelineContext
) -> list[Job]:
    session.commit()
    ctx.simulate_step_latency("inventory")
    close(session, claim, JobStatus.COMPLETED)
    sold = close_holds(session, checkout, HoldStatus.SOLD)  # {} when a re-run finds none
    low = session.execute(
        select(Product.sku, Product.stock).where(
            Product.id.in_(sorted(sold)),
            Product.stock <= ctx.settings.low_stock_threshold,
        )
    ).all()
    for sku, stock in low:
        record_event(session, checkout, f"Low stock: {sku} has {stock} left")
    order = session.scalars(select(Order).where(Order.checkout_id == checkout.id)).one()
    move_checkout(session, checkout, CheckoutStage.COMPLETED, "Order confirmed", order=order)
    email_id = order_confirmation(session, ctx.settings, checkout, order)
    return [
        new_job(
            session, ctx.settings, SEND_ORDER_CONFIRMATION, checkout=checkout, email_id=email_id
        )
    ]
