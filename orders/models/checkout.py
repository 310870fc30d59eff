"""The checkout (the tracked job), its lines, its event timeline and idempotency keys."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import CheckConstraint, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from orders.db import Base, utcnow
from orders.domain.statuses import CheckoutStage, CheckoutStatus, EventType
from orders.models.types import ProductLine, enum_column

if TYPE_CHECKING:
    from orders.models.sales import Payment


class Checkout(Base):
    __tablename__ = "checkouts"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    status: Mapped[CheckoutStatus] = mapped_column(enum_column(CheckoutStatus), index=True)
    stage: Mapped[CheckoutStage] = mapped_column(enum_column(CheckoutStage))
    progress: Mapped[int] = mapped_column(default=0)
    customer_id: Mapped[str | None] = mapped_column(String(100), index=True)
    email: Mapped[str] = mapped_column(String(254), index=True)
    session_id: Mapped[str | None] = mapped_column(String(255))
    cart_id: Mapped[str | None] = mapped_column(String(64))
    discount_code: Mapped[str | None] = mapped_column(String(64))
    subtotal_cents: Mapped[int]
    discount_cents: Mapped[int] = mapped_column(default=0)
    total_cents: Mapped[int]
    payment_token: Mapped[str] = mapped_column(String(100))
    payment_attempt: Mapped[int] = mapped_column(default=1)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(String(500))
    needs_attention: Mapped[bool] = mapped_column(default=False, index=True)
    mode: Mapped[str] = mapped_column(String(16), default="async")
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    # the W3C trace context of the request that placed it (orders.infra.tracing)
    trace_context: Mapped[str | None] = mapped_column(String(600))

    lines: Mapped[list[CheckoutLine]] = relationship(
        back_populates="checkout", cascade="all, delete-orphan", order_by="CheckoutLine.id"
    )
    # read-only: the charge step reads them in its claim's transaction (payments are
    # written as rows of their own)
    payments: Mapped[list[Payment]] = relationship(viewonly=True, order_by="Payment.id")


class CheckoutLine(ProductLine, Base):
    __tablename__ = "checkout_lines"
    __table_args__ = (CheckConstraint("quantity > 0", name="quantity_positive"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    checkout_id: Mapped[int] = mapped_column(ForeignKey("checkouts.id"), index=True)

    checkout: Mapped[Checkout] = relationship(back_populates="lines")


class CheckoutEvent(Base):
    """Append-only timeline. Row ids ascend; SSE uses them as event ids."""

    __tablename__ = "checkout_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    checkout_id: Mapped[int] = mapped_column(ForeignKey("checkouts.id"), index=True)
    type: Mapped[EventType] = mapped_column(enum_column(EventType))
    stage: Mapped[CheckoutStage] = mapped_column(enum_column(CheckoutStage))
    progress: Mapped[int]
    message: Mapped[str] = mapped_column(String(500))
    status_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class IdempotencyKey(Base):
    """A client's ``Idempotency-Key``: claimed first, then linked to its checkout."""

    __tablename__ = "idempotency_keys"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    checkout_id: Mapped[int | None] = mapped_column(ForeignKey("checkouts.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
