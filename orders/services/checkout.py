"""Placing a checkout: validate, record durably, then enqueue.

The ``Idempotency-Key``, the checkout row, its lines, its first event and its first
job are written in one transaction; the broker hears about it only after commit.
The key is inserted first (``ON CONFLICT DO NOTHING``): a concurrent duplicate waits
on the database's unique index until the first request commits, then answers with
its checkout (a replay), or takes the key if the first rolled back. One commit per
checkout, and no claim can outlive a request that died.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session, selectinload

from orders.config import Settings
from orders.db import utcnow
from orders.domain.validation import CheckoutRequest, ItemRequest, parse_checkout
from orders.errors import Conflict, FieldError, IdempotencyMismatch, ValidationFailed
from orders.jobtypes import RESERVE_STOCK
from orders.models import (
    Cart,
    Checkout,
    CheckoutStage,
    CheckoutStatus,
    DiscountCode,
    EventType,
    IdempotencyKey,
)
from orders.models.tables import CHECKOUTS, IDEMPOTENCY_KEYS, LINES, PRODUCTS
from orders.services.jobs import Dispatch, JobRef, new_job, ref, send_after_commit
from orders.services.ops.upsert import insert_unless_present
from orders.services.timeline import record_event

STALE_KEY_SECONDS = 60


@dataclass(frozen=True)
class Placed:
    public_id: str
    status: str
    replayed: bool
    refs: tuple[JobRef, ...] = ()


def request_hash(body: Any) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def place_checkout(
    session: Session,
    settings: Settings,
    body: Any,
    dispatch: Dispatch | None,
    *,
    idempotency_key: str | None = None,
    session_id: str | None = None,
) -> Placed:
    """Validate and record a checkout; enqueue its first job unless ``dispatch`` is None.

    With ``dispatch=None`` the caller runs the returned ``refs`` itself (sync mode).
    """
    try:
        if idempotency_key is not None:
            replay = _claim_key(session, idempotency_key, request_hash(body))
            if replay is not None:
                session.rollback()
                return replay
        request = parse_checkout(
            body, max_quantity=settings.max_item_quantity, max_lines=settings.max_cart_lines
        )
        checkout, job = _record(session, settings, request, session_id)
        if idempotency_key is not None:
            session.execute(
                update(IDEMPOTENCY_KEYS)
                .where(IDEMPOTENCY_KEYS.c.key == idempotency_key)
                .values(checkout_id=checkout.id)
            )
        refs = (ref(job),)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    if dispatch is not None:
        send_after_commit(session, refs, dispatch)
    return Placed(checkout.public_id, CheckoutStatus.QUEUED.value, replayed=False, refs=refs)


def _claim_key(session: Session, key: str, digest: str) -> Placed | None:
    """Claim ``key`` in this transaction (None), or answer for the request that holds it.

    The insert waits while another transaction holds an uncommitted claim of the same
    key, so what it finds afterwards is committed: a recorded checkout (replay), or a
    claim without one, which only a request of the two-transaction scheme this
    replaced can have left (409 while fresh, taken over once stale).
    """
    row = {"key": key, "request_hash": digest, "created_at": utcnow()}
    if insert_unless_present(session, IDEMPOTENCY_KEYS, row, ["key"]) is not None:
        return None
    held = session.get(IdempotencyKey, key, populate_existing=True)
    if held is None:  # released between our insert and our read: try once more
        return _claim_key(session, key, digest)
    if held.request_hash != digest:
        raise IdempotencyMismatch("this Idempotency-Key was used with a different request body")
    if held.checkout_id is None:
        cutoff = utcnow() - timedelta(seconds=STALE_KEY_SECONDS)
        taken = session.execute(
            update(IDEMPOTENCY_KEYS)
            .where(
                IDEMPOTENCY_KEYS.c.key == key,
                IDEMPOTENCY_KEYS.c.checkout_id.is_(None),
                IDEMPOTENCY_KEYS.c.created_at < cutoff,
            )
            .values(created_at=utcnow())
        )
        if taken.rowcount == 1:  # type: ignore[attr-defined]
            return None  # a dead request's claim; ours now, in this transaction
        raise Conflict("a request with this Idempotency-Key is still being processed")
    checkout = session.get(Checkout, held.checkout_id)
    assert checkout is not None
    return Placed(checkout.public_id, checkout.status.value, replayed=True)


def _items_from_cart(session: Session, cart_id: str) -> tuple[ItemRequest, ...]:
    cart = session.scalar(select(Cart).where(Cart.id == cart_id).options(selectinload(Cart.items)))
    if cart is None:
        raise ValidationFailed([FieldError("cartId", "unknown cart")])
    if cart.checked_out_at is not None:
        raise ValidationFailed([FieldError("cartId", "this cart was already checked out")])
    if not cart.items:
        raise ValidationFailed([FieldError("cartId", "the cart is empty")])
    cart.checked_out_at = utcnow()
    return tuple(
        ItemRequest(item.product.sku, item.quantity, index) for index, item in enumerate(cart.items)
    )


def _record(
    session: Session, settings: Settings, request: CheckoutRequest, session_id: str | None
) -> tuple[Checkout, Any]:
    from_cart = request.cart_id is not None
    items = _items_from_cart(session, request.cart_id) if request.cart_id else request.items
    wanted = select(
        PRODUCTS.c.id, PRODUCTS.c.sku, PRODUCTS.c.name, PRODUCTS.c.price_cents, PRODUCTS.c.stock
    ).where(PRODUCTS.c.sku.in_([i.sku for i in items]))
    products = {p.sku: p for p in session.execute(wanted)}
    errors: list[FieldError] = []
    for item in items:
        where = "cartId" if from_cart else f"items[{item.index}]"
        product = products.get(item.sku)
        if product is None:
            errors.append(
                FieldError(where if from_cart else f"{where}.sku", f"unknown SKU {item.sku}")
            )
        elif product.stock < item.quantity:
            left = f"only {product.stock} left" if product.stock else "out of stock"
            errors.append(
                FieldError(where if from_cart else f"{where}.quantity", f"{item.sku}: {left}")
            )
    percent = 0
    if request.discount_code:
        code = session.get(DiscountCode, request.discount_code)
        if code is None or not code.active:
            errors.append(FieldError("discountCode", "unknown discount code"))
        elif code.expires_at is not None and code.expires_at <= utcnow():
            errors.append(FieldError("discountCode", "this discount code has expired"))
        else:
            percent = code.percent_off
    if errors:
        raise ValidationFailed(errors)

    subtotal = sum(products[i.sku].price_cents * i.quantity for i in items)
    discount = subtotal * percent // 100
    now = utcnow()
    values: dict[str, Any] = {
        "public_id": uuid.uuid4().hex,
        "status": CheckoutStatus.QUEUED,
        "stage": CheckoutStage.QUEUED,
        "progress": 0,
        "customer_id": request.customer_id,
        "email": request.email,
        "session_id": session_id,
        "cart_id": request.cart_id,
        "discount_code": request.discount_code if percent else None,
        "subtotal_cents": subtotal,
        "discount_cents": discount,
        "total_cents": subtotal - discount,
        "payment_token": request.payment_token,
        "created_at": now,
        "updated_at": now,
    }
    # Core, not the unit of work: this is the 202's hot path (see orders.models.tables)
    checkout_id = session.execute(insert(CHECKOUTS).returning(CHECKOUTS.c.id), values).scalar_one()
    session.execute(
        insert(LINES),
        [
            {
                "checkout_id": checkout_id,
                "product_id": products[i.sku].id,
                "sku": i.sku,
                "name": products[i.sku].name,
                "quantity": i.quantity,
                "unit_price_cents": products[i.sku].price_cents,
            }
            for i in items
        ],
    )
    checkout = Checkout(id=checkout_id, **values)  # transient: what the event and job read
    record_event(session, checkout, "Order received", EventType.PROGRESS)
    job = new_job(session, settings, RESERVE_STOCK, checkout=checkout)
    return checkout, job
