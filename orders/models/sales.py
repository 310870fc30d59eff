"""Stock holds, orders, order lines and payments."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from orders.db import Base, utcnow
from orders.domain.statuses import HoldStatus, PaymentStatus
from orders.models.types import ProductLine, enum_column


class StockHold(Base):
    __tablename__ = "stock_holds"
    __table_args__ = (CheckConstraint("quantity > 0", name="quantity_positive"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    checkout_id: Mapped[int] = mapped_column(ForeignKey("checkouts.id"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    quantity: Mapped[int]
    status: Mapped[HoldStatus] = mapped_column(enum_column(HoldStatus), index=True)
    expires_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None]


class Order(Base):
    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_number: Mapped[str] = mapped_column(String(32), unique=True)
    checkout_id: Mapped[int] = mapped_column(ForeignKey("checkouts.id"), unique=True)
    email: Mapped[str] = mapped_column(String(254), index=True)
    customer_id: Mapped[str | None] = mapped_column(String(100))
    subtotal_cents: Mapped[int]
    discount_cents: Mapped[int]
    total_cents: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    lines: Mapped[list[OrderLine]] = relationship(
        back_populates="order", cascade="all, delete-orphan", order_by="OrderLine.id"
    )


class OrderLine(ProductLine, Base):
    __tablename__ = "order_lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)

    order: Mapped[Order] = relationship(back_populates="lines")


class Payment(Base):
    """One charge attempt at the gateway; ``idempotency_key`` is unique per attempt."""

    __tablename__ = "payments"

    id: Mapped[int] = mapped_column(primary_key=True)
    checkout_id: Mapped[int] = mapped_column(ForeignKey("checkouts.id"), index=True)
    amount_cents: Mapped[int]
    status: Mapped[PaymentStatus] = mapped_column(enum_column(PaymentStatus))
    gateway_ref: Mapped[str | None] = mapped_column(String(100))
    idempotency_key: Mapped[str] = mapped_column(String(100), unique=True)
    decline_reason: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    refunded_at: Mapped[datetime | None]
