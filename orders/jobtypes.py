"""Job types, their queues and priorities (from the seed).

The seed's priorities are "lower is more urgent" (1 = CRITICAL ... 20 = LOW); Huey
runs *higher* numbers first, so we translate with ``100 - seed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from orders.models.types import CheckoutStage


class SeedPriority(IntEnum):
    CRITICAL = 1
    HIGH = 5
    NORMAL = 10
    LOW = 20


ORDERS, PAYMENTS, NOTIFICATIONS, MAINTENANCE = "orders", "payments", "notifications", "maintenance"
QUEUES = (ORDERS, PAYMENTS, NOTIFICATIONS)


@dataclass(frozen=True)
class JobType:
    name: str
    queue: str
    seed_priority: SeedPriority
    stage: CheckoutStage | None = None  # the checkout step this job performs

    @property
    def huey_priority(self) -> int:
        return 100 - int(self.seed_priority)


RESERVE_STOCK = JobType("reserve-stock", ORDERS, SeedPriority.HIGH, CheckoutStage.RESERVING_STOCK)
PROCESS_PAYMENT = JobType(
    "process-payment", PAYMENTS, SeedPriority.CRITICAL, CheckoutStage.CHARGING_PAYMENT
)
CREATE_ORDER = JobType("create-order", ORDERS, SeedPriority.HIGH, CheckoutStage.CREATING_ORDER)
UPDATE_INVENTORY = JobType(
    "update-inventory", ORDERS, SeedPriority.HIGH, CheckoutStage.UPDATING_INVENTORY
)
SEND_ORDER_CONFIRMATION = JobType("send-order-confirmation", NOTIFICATIONS, SeedPriority.NORMAL)
SEND_RECOVERY_EMAIL = JobType("send-recovery-email", NOTIFICATIONS, SeedPriority.LOW)
REFUND_PAYMENT = JobType("refund-payment", PAYMENTS, SeedPriority.CRITICAL)

JOB_TYPES: dict[str, JobType] = {
    t.name: t
    for t in (
        RESERVE_STOCK,
        PROCESS_PAYMENT,
        CREATE_ORDER,
        UPDATE_INVENTORY,
        SEND_ORDER_CONFIRMATION,
        SEND_RECOVERY_EMAIL,
        REFUND_PAYMENT,
    )
}
