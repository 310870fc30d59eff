"""Typed SQLAlchemy 2.0 models. Import from here."""

from orders.domain.statuses import (
    CheckoutStage,
    CheckoutStatus,
    EmailStatus,
    EventType,
    HoldStatus,
    JobStatus,
    PaymentStatus,
)
from orders.models.catalog import Cart, CartItem, DiscountCode, Product
from orders.models.checkout import Checkout, CheckoutEvent, CheckoutLine, IdempotencyKey
from orders.models.ops import (
    AuditLog,
    CheckoutStatMinute,
    CheckoutStatTotal,
    JobStatMinute,
    JobStatTotal,
    LoginCounter,
    OpsRole,
    OpsSession,
    OpsUser,
    QueuePause,
    StatFold,
    WorkerHeartbeat,
)
from orders.models.sales import Order, OrderLine, Payment, StockHold
from orders.models.scaling import ScalingDecision
from orders.models.work import Email, Job

__all__ = [
    "AuditLog",
    "CheckoutStatMinute",
    "CheckoutStatTotal",
    "JobStatMinute",
    "LoginCounter",
    "OpsRole",
    "OpsSession",
    "OpsUser",
    "JobStatTotal",
    "StatFold",
    "QueuePause",
    "WorkerHeartbeat",
    "Cart",
    "CartItem",
    "Checkout",
    "CheckoutEvent",
    "CheckoutLine",
    "CheckoutStage",
    "CheckoutStatus",
    "DiscountCode",
    "Email",
    "EmailStatus",
    "EventType",
    "HoldStatus",
    "IdempotencyKey",
    "Job",
    "JobStatus",
    "Order",
    "OrderLine",
    "Payment",
    "PaymentStatus",
    "Product",
    "ScalingDecision",
    "StockHold",
]
