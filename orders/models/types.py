"""Column helpers and the enums stored by value."""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import Enum


def enum_column(enum_cls: type[StrEnum]) -> Enum:
    """Store an enum by its value in a VARCHAR (portable, readable in SQL)."""
    return Enum(
        enum_cls,
        native_enum=False,
        values_callable=lambda members: [m.value for m in members],
        length=32,
        validate_strings=True,
    )


class CheckoutStage(StrEnum):
    QUEUED = "queued"
    RESERVING_STOCK = "reserving_stock"
    CHARGING_PAYMENT = "charging_payment"
    CREATING_ORDER = "creating_order"
    UPDATING_INVENTORY = "updating_inventory"
    COMPLETED = "completed"
    FAILED = "failed"


class CheckoutStatus(StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"


class JobStatus(StrEnum):
    QUEUED = "queued"
    SCHEDULED = "scheduled"
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"
    DISCARDED = "discarded"


class HoldStatus(StrEnum):
    HELD = "held"
    RELEASED = "released"
    SOLD = "sold"


class PaymentStatus(StrEnum):
    CAPTURED = "captured"
    REFUNDED = "refunded"
    DECLINED = "declined"
    FAILED = "failed"


class EmailStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    STORED = "stored"
    FAILED = "failed"


class EventType(StrEnum):
    PROGRESS = "progress"
    COMPLETED = "completed"
    FAILED = "failed"
    INFO = "info"
