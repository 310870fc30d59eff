"""What a checkout writes, validated: its row, its lines', its first event and job.

Both ways of writing them (:mod:`orders.checkout.place` and
:mod:`orders.checkout.statement`) take their rows from here.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Engine, select
from sqlalchemy.orm import Session

from orders.config import Settings
from orders.db import utcnow
from orders.domain.validation import CheckoutRequest, ItemRequest
from orders.errors import FieldError, ValidationFailed
from orders.models import Checkout, CheckoutStage, CheckoutStatus, EventType
from orders.models.tables import DISCOUNTS, PRODUCTS
from orders.pipeline.jobs import job_row
from orders.pipeline.jobtypes import RESERVE_STOCK
from orders.pipeline.timeline import event_row, status_payload

RECEIVED = "Order received"


@dataclass(frozen=True)
class Prepared:
    """A validated checkout's rows, before any is written: the checkout's columns
    (without its id) and its lines' (without the checkout id)."""

    checkout: dict[str, Any]
    lines: list[dict[str, Any]]


class Catalogue:
    """The products a web process read last, by engine and SKU (prices and names
    change rarely; every use is checked against the live row: see ``checkout_at_once.write``)."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._by_engine: WeakKeyDictionary[Engine, dict[str, Any]] = WeakKeyDictionary()

    def products(self, engine: Engine, items: Sequence[ItemRequest]) -> dict[str, Any] | None:
        """Every item's remembered product, or None if one is not remembered."""
        known = self._by_engine.get(engine)
        if not known:
            return None
        try:
            return {item.sku: known[item.sku] for item in items}
        except KeyError:
            return None

    def remember(self, engine: Engine, products: Mapping[str, Any]) -> None:
        known = self._by_engine.setdefault(engine, {})
        if len(known) + len(products) > self.size:
            known.clear()
        known.update(products)


CATALOGUE = Catalogue()


def read_products(db: Session | Connection, items: tuple[ItemRequest, ...]) -> dict[str, Any]:
    """The items' products (id, sku, name, price_cents, stock) by SKU."""
    wanted = select(
        PRODUCTS.c.id, PRODUCTS.c.sku, PRODUCTS.c.name, PRODUCTS.c.price_cents, PRODUCTS.c.stock
    ).where(PRODUCTS.c.sku.in_([i.sku for i in items]))
    return {p.sku: p for p in db.execute(wanted)}


def prepare(
    db: Session | Connection | None,
    request: CheckoutRequest,
    items: tuple[ItemRequest, ...],
    session_id: str | None,
    products: Mapping[str, Any] | None = None,
) -> Prepared:
    """Check the items against the catalogue (and the discount code): the rows to
    write, or :class:`ValidationFailed` naming every field at fault. Reads only.
    ``products``: the items' products, read already (by :func:`read_products`); with
    them, and no discount code, ``db`` may be None (nothing to read)."""
    from_cart = request.cart_id is not None
    if products is None:
        assert db is not None
        products = read_products(db, items)
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
        assert db is not None
        code = db.execute(
            select(DISCOUNTS).where(DISCOUNTS.c.code == request.discount_code)
        ).first()
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
    checkout: dict[str, Any] = {
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
    lines = [
        {
            "product_id": products[i.sku].id,
            "sku": i.sku,
            "name": products[i.sku].name,
            "quantity": i.quantity,
            "unit_price_cents": products[i.sku].price_cents,
        }
        for i in items
    ]
    return Prepared(checkout, lines)


def first_rows(settings: Settings, checkout: Checkout) -> tuple[dict[str, Any], dict[str, Any]]:
    """A new checkout's first timeline row and its first job's row."""
    payload = status_payload(None, checkout, RECEIVED)
    event = event_row(checkout, RECEIVED, EventType.PROGRESS, payload)
    return event, job_row(settings, RESERVE_STOCK, checkout_id=checkout.id)
