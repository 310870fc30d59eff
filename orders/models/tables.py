"""The Core tables behind the models that the job hot path writes directly.

A claim, a close, a step entry, a stock move and the job/event inserts run for every
job; through the ORM (bulk-update bookkeeping, the unit of work) they cost more CPU
than the statements themselves, so those few statements use these tables instead;
so do the checkout's own inserts (the 202's path) and the ops counters' upserts.
"""

from __future__ import annotations

from sqlalchemy import Table

from orders.db import Base
from orders.models import (
    Checkout,
    CheckoutEvent,
    CheckoutLine,
    DiscountCode,
    Email,
    IdempotencyKey,
    Job,
    JobStatMinute,
    LoginCounter,
    Order,
    OrderLine,
    Product,
    QueuePause,
    StockHold,
    WorkerHeartbeat,
)


def _table(model: type[Base]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)  # a model's __table__ is typed as any FromClause
    return table


JOBS = _table(Job)
CHECKOUTS = _table(Checkout)
EVENTS = _table(CheckoutEvent)
PRODUCTS = _table(Product)
HOLDS = _table(StockHold)
ORDERS = _table(Order)
ORDER_LINES = _table(OrderLine)
QUEUE_PAUSES = _table(QueuePause)
LINES = _table(CheckoutLine)
IDEMPOTENCY_KEYS = _table(IdempotencyKey)
EMAILS = _table(Email)
DISCOUNTS = _table(DiscountCode)
JOB_STATS = _table(JobStatMinute)
HEARTBEATS = _table(WorkerHeartbeat)
LOGIN_COUNTERS = _table(LoginCounter)
