"""The catalogue: listing products and loading the demo catalogue."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from orders.models import DiscountCode, Product

DEMO_PRODUCTS = [
    ("TEE-BLK-M", "Black T-shirt (M)", "Heavyweight organic cotton tee.", 2500, 120),
    ("TEE-WHT-L", "White T-shirt (L)", "The classic, in bright white.", 2500, 80),
    ("HOOD-GRY-M", "Grey Hoodie (M)", "Brushed fleece, kangaroo pocket.", 5900, 40),
    ("MUG-LOGO", "Logo Mug", "350 ml stoneware mug.", 1400, 200),
    ("CAP-NVY", "Navy Cap", "Six-panel cotton cap.", 2200, 60),
    ("SOCK-3PK", "Socks (3 pack)", "Merino blend crew socks.", 1800, 150),
    ("TOTE-NAT", "Canvas Tote", "Natural canvas, long handles.", 1600, 90),
    ("STICKER-SET", "Sticker Set", "Five vinyl stickers.", 500, 500),
    ("LIMITED-PRINT", "Limited Print", "Signed art print; only a few made.", 9900, 5),
]


def list_products(session: Session) -> list[dict[str, Any]]:
    return [
        {"sku": p.sku, "name": p.name, "priceCents": p.price_cents, "stock": p.stock}
        for p in session.scalars(select(Product).order_by(Product.id))
    ]


def seed_demo_catalogue(session: Session) -> bool:
    """Add the demo products and the SAVE10 code if the catalogue is empty (the caller
    commits)."""
    if session.scalar(select(func.count()).select_from(Product)):
        return False
    for sku, name, description, price, stock in DEMO_PRODUCTS:
        session.add(
            Product(sku=sku, name=name, description=description, price_cents=price, stock=stock)
        )
    if session.get(DiscountCode, "SAVE10") is None:
        session.add(DiscountCode(code="SAVE10", percent_off=10, active=True))
    return True
