"""What a pipeline step is: three phases, run for one job or for many alike.

1. ``load`` reads what the step needs, inside the claim's transaction (no read
   transaction of its own).
2. ``call`` does the slow outside work (the gateway, mail, simulated latency) for
   one item, with no transaction open; an exception becomes that item's outcome.
3. ``write`` writes every effect and every follow-up job, set-wise, in one
   transaction that the runner opens and commits; it returns the follow-ups' refs
   (:class:`~orders.pipeline.jobs.JobRef`), sent once it commits. It sorts out the
   items whose work is already done (a re-run) and does nothing for them twice. If it
   raises, the runner rolls back and writes the items one by one through the same
   function, so only the item at fault takes the error.

Steps never commit: :mod:`orders.pipeline.runner` owns every transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from orders.models import Checkout, CheckoutLine
from orders.pipeline.context import PipelineContext
from orders.pipeline.jobs import JobRef
from orders.pipeline.leases import Claim


@dataclass(eq=False)
class Item:
    """One claimed job on its way through a step."""

    claim: Claim
    checkout: Checkout | None
    loaded: Any = None  # what ``load`` read for it
    result: Any = None  # what ``call`` returned
    raised: Exception | None = field(default=None, repr=False)  # what ``call`` raised


Load = Callable[[Session, Sequence[Item]], None]
Call = Callable[[Item, PipelineContext], Any]
Write = Callable[[Session, Sequence[Item], PipelineContext], list[JobRef]]
GiveUp = Callable[[Session, Claim, Checkout | None, str], None]


def _nothing_to_load(_session: Session, _items: Sequence[Item]) -> None:
    return None


def _nothing_to_call(_item: Item, _ctx: PipelineContext) -> None:
    return None


@dataclass(frozen=True)
class Step:
    write: Write
    load: Load = _nothing_to_load
    call: Call = _nothing_to_call
    # after the last attempt; None: the checkout fails and is flagged for an operator
    give_up: GiveUp | None = None


def checkouts_of(items: Sequence[Item]) -> list[Checkout]:
    """The items' checkouts (every item of a checkout step has one)."""
    checkouts = [item.checkout for item in items if item.checkout is not None]
    assert len(checkouts) == len(items), "a checkout step without one"
    return checkouts


_LINES_OF = (  # built once, its values bound
    select(CheckoutLine)
    .where(CheckoutLine.checkout_id.in_(bindparam("p_ids", expanding=True)))
    .order_by(CheckoutLine.checkout_id, CheckoutLine.id)
)


def load_lines(session: Session, items: Sequence[Item]) -> None:
    """A ``load`` for steps that read the checkouts' lines: all of them in one SELECT."""
    checkouts = {item.checkout.id: item.checkout for item in items if item.checkout is not None}
    lines: dict[int, list[CheckoutLine]] = {checkout_id: [] for checkout_id in checkouts}
    found = session.scalars(_LINES_OF, {"p_ids": list(checkouts)})
    for line in found:
        lines[line.checkout_id].append(line)
    for checkout_id, checkout in checkouts.items():
        set_committed_value(checkout, "lines", lines[checkout_id])
