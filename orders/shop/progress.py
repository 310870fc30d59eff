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

from sqlalchemy import Connection, bindparam, func, select
from sqlalchemy.orm import Session

from orders.domain.validation import plausible_id
from orders.errors import NotFound
from orders.models.tables import CHECKOUTS, EVENTS
from orders.shop.status import unknown_job

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
    ended: bool = False  # resumed after the final event: nothing more will come

    @property
    def finished(self) -> bool:
        return any(e.final for e in self.events)


Wanted = tuple[str, "int | None"]  # a stream's checkout public id and its Last-Event-ID


def open_progress(
    session: Session | Connection, public_id: str, last_event_id: int | None
) -> Opening:
    """The first events of a stream.

    Without ``last_event_id``, or with one beyond this checkout's latest row (another
    checkout's, or made up): "from now", one event, the current state: the latest
    timeline row (every change of state writes one, in its transaction, and a
    checkout is placed with its first). Otherwise the rows after that id (nothing if
    none were missed; ``ended`` if the last one the client has is final). Raises
    ``NotFound`` for an unknown job.

    A stream never waits after an id beyond the latest: the final event would come
    with a smaller id and never be sent, and the stream would never end.
    """
    opening = open_each(session, [(public_id, last_event_id)])[0]
    if isinstance(opening, NotFound):
        raise opening
    return opening


def open_each(session: Session | Connection, wanted: Sequence[Wanted]) -> list[Opening | NotFound]:
    """:func:`open_progress` for many streams: one statement reads every checkout and
    its latest row (the state and its id come from that one row, so they agree), and
    one more reads the missed rows of those that resume. In order, an opening or the
    ``NotFound`` of an unknown job."""
    ids = sorted({public_id for public_id, _ in wanted if plausible_id(public_id)})
    latest = {row.public_id: row for row in session.execute(_LATEST, {"ids": ids})} if ids else {}
    resuming = [
        (latest[public_id].checkout_id, after)
        for public_id, after in wanted
        if public_id in latest and after is not None and after <= latest[public_id].id
    ]
    missed = iter(events_after_each(session, resuming))
    openings: list[Opening | NotFound] = []
    for public_id, after in wanted:
        row = latest.get(public_id)
        if row is None:
            openings.append(unknown_job(public_id))
            continue
        now = ProgressEvent(row.id, json.loads(row.status_json))
        if after is None or after > row.id:
            openings.append(Opening(row.checkout_id, public_id, [now], 0))
        else:
            events = _until_final(next(missed))
            ended = not events and now.final
            openings.append(Opening(row.checkout_id, public_id, events, after, ended))
    return openings


_NEWER = EVENTS.alias("newer")
# every stream opening runs this: built once, its values bound
_LATEST = (
    select(CHECKOUTS.c.public_id, EVENTS.c.checkout_id, EVENTS.c.id, EVENTS.c.status_json)
    .join(EVENTS, EVENTS.c.checkout_id == CHECKOUTS.c.id)
    .where(
        CHECKOUTS.c.public_id.in_(bindparam("ids", expanding=True)),
        EVENTS.c.id
        == select(func.max(_NEWER.c.id))
        .where(_NEWER.c.checkout_id == CHECKOUTS.c.id)
        .scalar_subquery(),
    )
)


def events_after(
    session: Session | Connection, checkout_id: int, after_id: int, limit: int = 200
) -> list[ProgressEvent]:
    """Timeline rows after ``after_id``."""
    return events_after_each(session, [(checkout_id, after_id)], limit)[0]


def events_after_each(
    session: Session | Connection, wanted: Sequence[tuple[int, int]], limit: int = 200
) -> list[list[ProgressEvent]]:
    """:func:`events_after` for many streams in one statement: for each (checkout row
    id, after id) of ``wanted``, in order, its rows after that id. The statement reads
    from the smallest after id of all, so a row is parsed only when a stream is sent it,
    and once, whatever number of streams share it."""
    if not wanted:
        return []
    params = {
        "ids": sorted({checkout for checkout, _ in wanted}),
        "after_id": min(a for _, a in wanted),
    }
    rows: dict[int, list[tuple[int, str]]] = {}
    for checkout_id, row_id, snapshot in session.execute(_EVENTS_OF, params):
        rows.setdefault(checkout_id, []).append((row_id, snapshot))
    parsed: dict[int, ProgressEvent] = {}

    def event(row_id: int, snapshot: str) -> ProgressEvent:
        found = parsed.get(row_id)
        if found is None:
            found = parsed[row_id] = ProgressEvent(row_id, json.loads(snapshot))
        return found

    return [
        [event(*row) for row in rows.get(checkout, ()) if row[0] > after][:limit]
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
    text, last_id, final = _encoded(opening.events, opening.after_id)
    yield "retry: 2000\n\n" + text  # one write: the socket sends once per wake-up
    if final:
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
        text, last_id, final = _encoded(batch, last_id)
        if final:
            yield text
            return
        if clock() >= next_beat:
            text += ": heartbeat\n\n"
            next_beat = clock() + heartbeat_seconds
        if text:
            yield text


def _encoded(events: list[ProgressEvent], last_id: int) -> tuple[str, int, bool]:
    """The events up to the first final one, framed as one text; the id of the last
    of them (``last_id`` if none), and whether it is final."""
    events = _until_final(events)
    if not events:
        return "", last_id, False
    return "".join(event.encode() for event in events), events[-1].id, events[-1].final
