"""Live progress as a sequence of events read from the checkout's timeline.

The stream (``GET /api/orders/status/<jobId>/stream``) is a view of
``checkout_events``: event id = row id, data = the status JSON snapshot stored on
the row. This module decides what to send and when to stop; it knows nothing of
HTTP, Redis or Flask.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.orm import Session

from orders.models import CheckoutEvent
from orders.models.tables import EVENTS
from orders.pipeline.timeline import status_payload
from orders.shop.status import find_checkout_and_latest_event

TERMINAL = ("completed", "failed")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProgressEvent:
    id: int
    data: dict[str, Any]

    @property
    def name(self) -> str:
        """``progress``, ``completed`` or ``failed`` (from the status the data shows)."""
        status = self.data.get("status")
        return status if status in TERMINAL else "progress"

    @property
    def final(self) -> bool:
        return self.name in TERMINAL

    def encode(self) -> str:
        """The event in ``text/event-stream`` framing."""
        data = json.dumps(self.data, separators=(",", ":"))
        return f"id: {self.id}\nevent: {self.name}\ndata: {data}\n\n"


@dataclass(frozen=True)
class Opening:
    """What a new stream starts with: the checkout row id and the first events."""

    checkout_id: int
    public_id: str
    events: list[ProgressEvent]
    after_id: int  # the client has everything up to this row id

    @property
    def finished(self) -> bool:
        return any(e.final for e in self.events)


def open_progress(session: Session, public_id: str, last_event_id: int | None) -> Opening:
    """The first events of a stream.

    Without ``last_event_id``, or with one beyond this checkout's latest row (another
    checkout's, or made up): "from now", one event, the current state, carrying the
    id of the latest timeline row. Otherwise the rows after that id (nothing if none
    were missed). Raises ``NotFound`` for an unknown job.

    A stream never waits after an id beyond the latest: the final event would come
    with a smaller id and never be sent, and the stream would never end.
    """
    # the state and the latest row's id from one statement, so from one snapshot:
    # read one after the other, a checkout that moved in between could be sent in
    # its old state under the new row's id, and the stream would then wait for an
    # event that had already happened
    checkout, latest = find_checkout_and_latest_event(session, public_id)
    if last_event_id is None or last_event_id > latest:
        events = [ProgressEvent(latest, status_payload(session, checkout))]
        last_event_id = None
    else:
        events = events_after(session, checkout.id, last_event_id)
    return Opening(checkout.id, checkout.public_id, _until_final(events), last_event_id or 0)


def events_after(
    session: Session | Connection, checkout_id: int, after_id: int, limit: int = 200
) -> list[ProgressEvent]:
    """Timeline rows after ``after_id``."""
    return events_after_each(session, [(checkout_id, after_id)], limit)[0]


def events_after_each(
    session: Session | Connection, wanted: Sequence[tuple[int, int]], limit: int = 200
) -> list[list[ProgressEvent]]:
    """:func:`events_after` for many streams in one statement: for each (checkout row
    id, after id) of ``wanted``, in order, its rows after that id. Each row is parsed
    once, whatever number of streams share it."""
    if not wanted:
        return []
    params = {
        "ids": sorted({checkout for checkout, _ in wanted}),
        "after_id": min(a for _, a in wanted),
    }
    rows: dict[int, list[ProgressEvent]] = {}
    for checkout_id, row_id, snapshot in session.execute(_EVENTS_OF, params):
        rows.setdefault(checkout_id, []).append(ProgressEvent(row_id, json.loads(snapshot)))
    return [
        [event for event in rows.get(checkout, ()) if event.id > after][:limit]
        for checkout, after in wanted
    ]


# every open stream runs this on every wake-up: built once, its values bound
_EVENTS_OF = (
    select(EVENTS.c.checkout_id, EVENTS.c.id, EVENTS.c.status_json)
    .where(
        EVENTS.c.checkout_id.in_(bindparam("ids", expanding=True)),
        EVENTS.c.id > bindparam("after_id"),
    )
    .order_by(EVENTS.c.id)
)


def is_finished(session: Session, checkout_id: int) -> bool:
    """True when the last timeline row shows a final state (nothing more will come)."""
    row = session.execute(
        select(CheckoutEvent.status_json)
        .where(CheckoutEvent.checkout_id == checkout_id)
        .order_by(CheckoutEvent.id.desc())
        .limit(1)
    ).scalar()
    return row is not None and json.loads(row).get("status") in TERMINAL


def _until_final(events: list[ProgressEvent]) -> list[ProgressEvent]:
    for index, event in enumerate(events):
        if event.final:
            return events[: index + 1]
    return events


def follow_progress(
    opening: Opening,
    read_after: Callable[[int], list[ProgressEvent]],
    wait: Callable[[float], bool],
    *,
    heartbeat_seconds: float,
    poll_seconds: float,
    clock: Callable[[], float],
    retry_seconds: float = 1.0,
    max_seconds: float = float("inf"),
) -> Iterator[str]:
    """Yield the stream's text: the opening events, then new rows as they appear,
    a comment heartbeat at least every ``heartbeat_seconds``; stop after a final event,
    or ``max_seconds`` after the start whatever happens (``EventSource`` reconnects
    with ``Last-Event-ID`` and misses nothing).

    ``wait(timeout)`` blocks until a wake-up or the timeout; after either, the
    timeline is read (a wake-up is only a hint; the database is the truth). If a read
    fails (the database is briefly away or out of connections) the stream stays
    open and reads again after ``retry_seconds``.
    """
    yield "retry: 2000\n\n"
    last_id = opening.after_id
    for event in opening.events:
        yield event.encode()
        last_id = event.id
        if event.final:
            return
    next_beat = clock() + heartbeat_seconds
    end = clock() + max_seconds
    interval = poll_seconds
    while clock() < end:
        wait(max(0.0, min(interval, next_beat - clock(), end - clock())))
        try:
            batch = read_after(last_id)
        except Exception as exc:
            log.warning("progress stream %s: reading failed (%s); retrying", opening.public_id, exc)
            batch, interval = [], min(poll_seconds, retry_seconds)
        else:
            interval = poll_seconds
        for event in _until_final(batch):
            yield event.encode()
            last_id = event.id
            if event.final:
                return
        if clock() >= next_beat:
            yield ": heartbeat\n\n"
            next_beat = clock() + heartbeat_seconds
