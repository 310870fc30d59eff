"""Column helpers; the enums they store (by value) are the domain's."""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import Enum, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column


def enum_column(enum_cls: type[StrEnum]) -> Enum:
    """Store an enum by its value in a VARCHAR (portable, readable in SQL)."""
    return Enum(
        enum_cls,
        native_enum=False,
        values_callable=lambda members: [m.value for m in members],
        length=32,
        validate_strings=True,
    )


class ProductLine:
    """The columns a checkout line and an order line share: so many of a product, named
    and priced as it was when the shopper checked out (a mixin; each table has its own)."""

    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    sku: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    quantity: Mapped[int]
    unit_price_cents: Mapped[int]
