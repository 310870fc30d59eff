"""The states a checkout, a job, a hold, a payment, an email or an event can be in.

Plain enums (stored by value: :func:`orders.models.types.enum_column`).
"""

from __future__ import annotations

from enum import StrEnum


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
