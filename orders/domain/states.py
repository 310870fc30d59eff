"""The checkout state machine: one table of allowed moves, one function that moves.

``queued -> processing -> completed | failed``; inside ``processing`` the steps
run ``reserving_stock -> charging_payment -> creating_order -> updating_inventory``.
A checkout that failed with a declined card may go back to ``queued`` (another card).
"""

from __future__ import annotations

from orders.domain.statuses import CheckoutStage as S
from orders.domain.statuses import CheckoutStatus
from orders.errors import IllegalTransition

ALLOWED: dict[S, frozenset[S]] = {
    S.QUEUED: frozenset({S.RESERVING_STOCK, S.FAILED}),
    S.RESERVING_STOCK: frozenset({S.CHARGING_PAYMENT, S.FAILED}),
    S.CHARGING_PAYMENT: frozenset({S.CREATING_ORDER, S.FAILED}),
    S.CREATING_ORDER: frozenset({S.UPDATING_INVENTORY, S.FAILED}),
    S.UPDATING_INVENTORY: frozenset({S.COMPLETED, S.FAILED}),
    S.COMPLETED: frozenset(),
    S.FAILED: frozenset({S.QUEUED}),
}

PROGRESS: dict[S, int] = {
    S.QUEUED: 0,
    S.RESERVING_STOCK: 10,
    S.CHARGING_PAYMENT: 35,
    S.CREATING_ORDER: 65,
    S.UPDATING_INVENTORY: 85,
    S.COMPLETED: 100,
    S.FAILED: 100,
}

DESCRIPTION: dict[S, str] = {
    S.QUEUED: "Order received, waiting for a worker",
    S.RESERVING_STOCK: "Reserving your items",
    S.CHARGING_PAYMENT: "Processing payment",
    S.CREATING_ORDER: "Creating your order",
    S.UPDATING_INVENTORY: "Updating inventory",
    S.COMPLETED: "Order confirmed",
    S.FAILED: "Order failed",
}

TERMINAL = frozenset({S.COMPLETED, S.FAILED})


def status_of(stage: S) -> CheckoutStatus:
    if stage is S.QUEUED:
        return CheckoutStatus.QUEUED
    if stage is S.COMPLETED:
        return CheckoutStatus.COMPLETED
    if stage is S.FAILED:
        return CheckoutStatus.FAILED
    return CheckoutStatus.PROCESSING


def check_move(current: S, target: S) -> None:
    """Raise :class:`IllegalTransition` unless ``current -> target`` is in the table."""
    if target not in ALLOWED[current]:
        raise IllegalTransition(f"checkout cannot move from {current} to {target}")
