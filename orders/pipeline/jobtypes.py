"""The one table of job types: queue, priority, retries, stages, follow-up, batching.

Huey tasks, the runner, the sweeper and the ops pages all read :data:`JOB_TYPES`.
The seed's priorities are "lower is more urgent" (1 = CRITICAL ... 20 = LOW); Huey
runs *higher* numbers first, so we translate with ``100 - seed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from importlib import import_module
from typing import TYPE_CHECKING

from orders.domain.statuses import CheckoutStage

if TYPE_CHECKING:
    from orders.config import Settings
    from orders.pipeline.step import Step


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
    step: str  # the module of orders.pipeline.steps that runs it
    stage: CheckoutStage | None = None  # the checkout stage this job performs
    source: CheckoutStage | None = None  # the stage its checkout comes from
    follow_up: str | None = None  # the job type added when the step succeeds
    batches: bool = False  # False: always one job per run
    rate_limited: bool = False  # takes a token of the payments rate limit per message

    @property
    def huey_priority(self) -> int:
        return 100 - int(self.seed_priority)

    @property
    def runs(self) -> Step:
        """The step (imported on first use: steps import this table)."""
        step: Step = import_module(f"orders.pipeline.steps.{self.step}").STEP
        return step

    def max_attempts(self, settings: Settings) -> int:
        """Attempts before giving up (``MAX_ATTEMPTS``; the seed's 5)."""
        return settings.max_attempts

    def retry_delay(self, settings: Settings, attempt: int) -> float:
        """Seed policy: exponential backoff from ``RETRY_DELAY_SECONDS`` (2 s, 4 s, 8 s...)."""
        return float(settings.retry_delay_seconds * settings.retry_backoff ** max(attempt - 1, 0))

    def batch_size(self, settings: Settings) -> int:
        """How many jobs one run of this type may take (1: jobs run alone), up to
        ``PIPELINE_BATCH``. A batch's calls to the outside (the gateway, mail, simulated
        work) run at once, each item waiting its own (:mod:`orders.pipeline.calls`); a
        rate-limited type takes its token per message, so it runs alone while the
        payments rate limit is on."""
        if not self.batches or settings.pipeline_batch < 2:
            return 1
        if self.rate_limited and settings.payments_rate_limit > 0:
            return 1
        return settings.pipeline_batch


S = CheckoutStage
RESERVE_STOCK = JobType(
    "reserve-stock",
    ORDERS,
    SeedPriority.HIGH,
    "reserve_stock",
    S.RESERVING_STOCK,
    S.QUEUED,
    "process-payment",
    batches=True,
)
PROCESS_PAYMENT = JobType(
    "process-payment",
    PAYMENTS,
    SeedPriority.CRITICAL,
    "process_payment",
    S.CHARGING_PAYMENT,
    S.RESERVING_STOCK,
    "create-order",
    batches=True,
    rate_limited=True,
)
CREATE_ORDER = JobType(
    "create-order",
    ORDERS,
    SeedPriority.HIGH,
    "create_order",
    S.CREATING_ORDER,
    S.CHARGING_PAYMENT,
    "update-inventory",
    batches=True,
)
UPDATE_INVENTORY = JobType(
    "update-inventory",
    ORDERS,
    SeedPriority.HIGH,
    "update_inventory",
    S.UPDATING_INVENTORY,
    S.CREATING_ORDER,
    "send-order-confirmation",
    batches=True,
)
SEND_ORDER_CONFIRMATION = JobType(
    "send-order-confirmation",
    NOTIFICATIONS,
    SeedPriority.NORMAL,
    "send_email",
    batches=True,
)
SEND_RECOVERY_EMAIL = JobType("send-recovery-email", NOTIFICATIONS, SeedPriority.LOW, "send_email")
REFUND_PAYMENT = JobType("refund-payment", PAYMENTS, SeedPriority.CRITICAL, "refund_payment")

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
