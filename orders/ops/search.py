"""Find checkouts and jobs by order number, job id, checkout id, customer id or email."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from orders.models import Checkout, Job, Order

LIMIT = 50


@dataclass
class SearchResult:
    checkouts: list[tuple[Checkout, str | None]] = field(default_factory=list)
    jobs: list[Job] = field(default_factory=list)


def search(session: Session, q: str) -> SearchResult:
    q = q.strip()[:254]
    result = SearchResult()
    if not q:
        return result
    by_order = select(Order.checkout_id).where(Order.order_number == q.upper())
    by_job = select(Job.checkout_id).where(Job.id == q.lower())
    rows = session.execute(
        select(Checkout, Order.order_number)
        .outerjoin(Order, Order.checkout_id == Checkout.id)
        .where(
            or_(
                Checkout.public_id == q,
                Checkout.customer_id == q,
                func.lower(Checkout.email) == q.lower(),
                Checkout.id.in_(by_order),
                Checkout.id.in_(by_job),
            )
        )
        .order_by(Checkout.id.desc())
        .limit(LIMIT)
    )
    result.checkouts = [(checkout, number) for checkout, number in rows]
    result.jobs = list(session.scalars(select(Job).where(Job.id == q.lower())))
    return result
