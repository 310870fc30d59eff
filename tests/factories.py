"""Test data, made in one place."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from orders.models import DiscountCode, Product

_counter = itertools.count(1)


def make_product(
    session: Session,
    *,
    sku: str | None = None,
    price_cents: int = 1000,
    stock: int = 10,
    name: str | None = None,
) -> Product:
    n = next(_counter)
    product = Product(
        sku=sku or f"SKU-{n}",
        name=name or f"Product {n}",
        price_cents=price_cents,
        stock=stock,
    )
    session.add(product)
    session.commit()
    return product


def make_discount(
    session: Session, code: str = "SAVE10", percent: int = 10, expires_at: datetime | None = None
) -> DiscountCode:
    discount = DiscountCode(code=code, percent_off=percent, active=True, expires_at=expires_at)
    session.add(discount)
    session.commit()
    return discount


def checkout_body(
    *items: tuple[str, int], email: str = "ann@example.com", **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "customerId": "user123",
        "email": email,
        "items": [{"sku": sku, "quantity": qty} for sku, qty in items],
        "paymentToken": "tok_visa",
    }
    body.update(extra)
    return body
