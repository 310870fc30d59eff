"""The one function that moves a checkout, and the append-only event timeline."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from orders.db import utcnow
from orders.domain.disclosure import shopper_error
from orders.domain.states import DESCRIPTION, PROGRESS, TERMINAL, check_move, status_of
from orders.errors import LeaseLost
from orders.infra.bulk import insert_rows
from orders.models import Checkout, CheckoutStage, CheckoutStatus, EventType, Order
from orders.models.tables import CHECKOUTS, EVENTS
from orders.pipeline.stats import record_checkout_end

EVENTS_RECORDED = "events_recorded"
"""``session.info`` key: an event was written since the checkout's streams were last woken."""


def status_payload(
    session: Session | None,
    checkout: Checkout,
    message: str | None = None,
    order: Order | None = None,
) -> dict[str, Any]:
    """The status JSON of API.md for this checkout as it stands (``order``: the
    checkout's order when the caller has it, saving the lookup; only a completed
    checkout's needs ``session``)."""
    if checkout.status is CheckoutStatus.COMPLETED:
        if order is None:
            assert session is not None, "a completed checkout's status reads its order"
            order = session.scalar(select(Order).where(Order.checkout_id == checkout.id))
        return {
            "status": "completed",
            "progress": 100,
            "order": {
                "orderId": order.id if order else None,
                "orderNumber": order.order_number if order else None,
                "totalCents": checkout.total_cents,
            },
        }
    if checkout.status is CheckoutStatus.FAILED:
        return {
            "status": "failed",
            # shoppers read this (status, streams): never a server's error text
            "error": shopper_error(checkout.error_code, checkout.error_message),
            "code": checkout.error_code or "processing_error",
        }
    return {
        "status": checkout.status.value,
        "progress": checkout.progress,
        "step": checkout.stage.value,
        "message": message or DESCRIPTION[checkout.stage],
    }


def record_event(
    session: Session,
    checkout: Checkout,
    message: str,
    type_: EventType = EventType.INFO,
    *,
    order: Order | None = None,
) -> None:
    """Append one event, in the session's transaction, carrying a snapshot of the
    status JSON."""
    record_events(session, [(checkout, message, type_, order)])


Event = tuple[Checkout, str, EventType, Order | None]
"""One event to record: the checkout, the message, its type, the checkout's order (or None)."""


def record_events(session: Session, events: Sequence[Event]) -> None:
    """Append events (one INSERT for all), in the session's transaction."""
    orders = _orders_of(session, events)
    rows = []
    for checkout, message, type_, order in events:
        progress_message = message if type_ is EventType.PROGRESS else None
        order = order or orders.get(checkout.id)
        payload = status_payload(session, checkout, progress_message, order)
        rows.append(event_row(checkout, message, type_, payload))
    if rows:
        session.info[EVENTS_RECORDED] = True  # the runner wakes the streams after commit
        insert_rows(session, EVENTS, rows)


def _orders_of(session: Session, events: Sequence[Event]) -> dict[int, Order]:
    """The orders the events' status snapshots need and were not given (a completed
    checkout's, such as a confirmation email's event), read in one statement."""
    ids = {
        checkout.id
        for checkout, _, _, order in events
        if order is None and checkout.status is CheckoutStatus.COMPLETED
    }
    if not ids:
        return {}
    found = session.scalars(select(Order).where(Order.checkout_id.in_(ids)))
    return {order.checkout_id: order for order in found}


def event_row(
    checkout: Checkout, message: str, type_: EventType, payload: dict[str, Any]
) -> dict[str, Any]:
    """The timeline row of one event (``payload``: the status JSON it carries)."""
    return {
        "checkout_id": checkout.id,
        "type": type_,
        "stage": checkout.stage,
        "progress": checkout.progress,
        "message": message[:500],
        "status_json": json.dumps(payload),
        "created_at": utcnow(),
    }


_MOVED = ("stage", "status", "progress", "updated_at", "error_code", "error_message", "finished_at")
# every step entry runs this: built once, its values bound; the ids it moved back
_MOVE = (
    update(CHECKOUTS)
    .where(
        CHECKOUTS.c.id.in_(bindparam("p_ids", expanding=True)),
        CHECKOUTS.c.stage == bindparam("p_from"),
    )
    .values({name: bindparam(f"p_{name}") for name in _MOVED})
    .returning(CHECKOUTS.c.id)
)


def move_checkout(
    session: Session,
    checkout: Checkout,
    target: CheckoutStage,
    message: str | None = None,
    *,
    error_code: str | None = None,
    error_message: str | None = None,
    order: Order | None = None,
) -> None:
    """Move ``checkout`` to ``target`` if the state table allows it, and record why
    (``order``: the checkout's order, when the caller has it).

    The UPDATE is conditional on the stage we read, so two workers racing on one
    checkout cannot both move it: the loser gets :class:`LeaseLost`.
    """
    check_move(checkout.stage, target)
    values = _moved_values(target, error_code, error_message)
    if not _move(session, [checkout], checkout.stage, target, values):
        raise LeaseLost(f"checkout {checkout.public_id} changed under us")
    kind = _event_kind(target)
    record_event(session, checkout, message or DESCRIPTION[target], kind, order=order)


def move_all(
    session: Session,
    checkouts: Sequence[Checkout],
    source: CheckoutStage,
    target: CheckoutStage,
    orders: Mapping[int, Order] | None = None,
) -> list[Checkout]:
    """:func:`move_checkout` for checkouts in ``source``, in one UPDATE (and one INSERT
    for their events). Returns the ones moved: one that left ``source`` meanwhile is
    not (the caller deals with it on its own). ``orders``: by checkout id, if known."""
    check_move(source, target)
    if not checkouts:
        return []
    done = _move(session, checkouts, source, target, _moved_values(target))
    kind, message = _event_kind(target), DESCRIPTION[target]
    record_events(session, [(c, message, kind, orders.get(c.id) if orders else None) for c in done])
    return done


def _move(
    session: Session,
    checkouts: Sequence[Checkout],
    source: CheckoutStage,
    target: CheckoutStage,
    values: dict[str, Any],
) -> list[Checkout]:
    """Write ``values`` (:func:`_moved_values`) to those of ``checkouts`` still in
    ``source``, in one UPDATE; count their ends and return them, their attributes set."""
    params = {f"p_{name}": value for name, value in values.items()}
    ids = [checkout.id for checkout in checkouts]
    moved = set(session.scalars(_MOVE, {**params, "p_ids": ids, "p_from": source}))
    done = [checkout for checkout in checkouts if checkout.id in moved]
    for checkout in done:
        _count_end(session, checkout, target, values["updated_at"], values["error_code"])
        for key, value in values.items():
            set_committed_value(checkout, key, value)  # already written; don't UPDATE again
    return done


def _count_end(
    session: Session,
    checkout: Checkout,
    target: CheckoutStage,
    at: datetime,
    error_code: str | None = None,
) -> None:
    """The ops counters of checkouts that ended (or left ``failed`` for the queue again)
    ``at`` the time written on the row; called before its attributes take the new values."""
    if target in TERMINAL:
        code = (error_code or "processing_error") if target is CheckoutStage.FAILED else None
        record_checkout_end(session, checkout.created_at, target.value, code, at)
    elif checkout.stage is CheckoutStage.FAILED:
        record_checkout_end(session, checkout.created_at, "requeued", checkout.error_code, at)


def _moved_values(
    target: CheckoutStage, error_code: str | None = None, error_message: str | None = None
) -> dict[str, Any]:
    now = utcnow()
    return {
        "stage": target,
        "status": status_of(target),
        "progress": PROGRESS[target],
        "updated_at": now,
        "error_code": error_code,
        "error_message": error_message,
        "finished_at": now if target in TERMINAL else None,
    }


_KINDS = {CheckoutStage.COMPLETED: EventType.COMPLETED, CheckoutStage.FAILED: EventType.FAILED}


def _event_kind(target: CheckoutStage) -> EventType:
    return _KINDS.get(target, EventType.PROGRESS)
