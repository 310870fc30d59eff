"""``GET /api/orders/status/<jobId>/stream``: live progress as Server-Sent Events.

The view reads the checkout's first events on the streams' own pool, closed before
the stream starts (an open stream holds no connection). While streaming it waits on
this process's one Redis subscription (the hub) or, in embedded mode, polls; either
way it then reads its new timeline rows. Openings and reads share statements: the
streams one wake-up rang join one read, and those asked while a read is under way are
the next one (:class:`~orders.infra.combiner.Combiner`, gathering), so a crowd of
streams costs a statement per wake-up, not one each. Every stream ends: after its
checkout's final event, or after ``SSE_MAX_SECONDS``; and the process holds at most
``SSE_MAX_STREAMS`` of them (``SSE_MAX_STREAMS_PER_CLIENT`` per client).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from flask import Blueprint, Flask, Response, current_app, request
from sqlalchemy import Connection, Engine, create_engine

from orders.config import Settings
from orders.db import ping_when_idle
from orders.errors import FieldError, ValidationFailed
from orders.infra.combiner import Combiner
from orders.infra.pubsub import Hub
from orders.shop.progress import (
    ProgressEvent,
    events_after_each,
    follow_progress,
    open_each,
)
from orders.web.extensions import db, settings
from orders.web.stream_slots import StreamSlots, build_stream_slots
from orders.wiring import build_progress_hub

bp = Blueprint("stream", __name__, url_prefix="/api")

SSE_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


def init_stream(app: Flask) -> None:
    config: Settings = app.extensions["shop.settings"]
    app.extensions["shop.progress_hub"] = build_progress_hub(config)
    app.extensions["shop.stream_engine"] = stream_engine(config)
    app.extensions["shop.stream_slots"] = build_stream_slots(config)
    app.register_blueprint(bp)


def stream_engine(config: Settings) -> Engine | None:
    """A small pool of its own for the streams' timeline reads (PostgreSQL).

    However many streams are open, they share ``SSE_DB_POOL`` connections (a read
    is one round trip, and a stream reads only when its checkout moved),
    so a crowd of shoppers can't exhaust the database's connection limit. SQLite
    (no server connections) uses the app's engine.
    """
    if config.sqlalchemy_url.startswith("sqlite"):
        return None
    engine = create_engine(
        config.sqlalchemy_url,
        pool_size=config.sse_db_pool,
        max_overflow=0,
        pool_timeout=30,
        pool_recycle=1800,
        # a read is one SELECT: no BEGIN before it, no ROLLBACK when the pool takes the
        # connection back (psycopg skips it outside a transaction); a ping only after idling
        isolation_level="AUTOCOMMIT",
    )
    return ping_when_idle(engine)


READS_AT_ONCE = 500  # the most streams one read serves
Asked = TypeVar("Asked")
Answer = TypeVar("Answer")


def shared_read(
    name: str,
    engine: Engine,
    read: Callable[[Connection, Sequence[Asked]], Sequence[Answer | BaseException]],
) -> Combiner[Asked, Answer]:
    """This process's shared read ``name`` (built on first use): what the streams ask
    while one is under way is the next one, on one Core connection (no ORM session);
    the streams one wake-up rang share one read (``gather``)."""
    reads: Combiner[Asked, Answer] | None = current_app.extensions.get(name)
    if reads is None:

        def run(asked: Sequence[Asked]) -> Sequence[Answer | BaseException]:
            with engine.connect() as conn:
                return read(conn, asked)

        reads = current_app.extensions[name] = Combiner(run, READS_AT_ONCE, gather=True)
    return reads


def hub() -> Hub:
    value: Hub = current_app.extensions["shop.progress_hub"]
    return value


EVENT_ID_RE = re.compile(r"[0-9]{1,18}")
"""ASCII digits only (``str.isdigit`` takes ``²`` and other digits ``int`` refuses or reads)."""


def last_event_id() -> int | None:
    field, raw = "Last-Event-ID", request.headers.get("Last-Event-ID")
    if not raw:
        field, raw = "lastEventId", request.args.get("lastEventId")
    if not raw:
        return None
    if not EVENT_ID_RE.fullmatch(raw):
        raise ValidationFailed([FieldError(field, "must be an event id: 1 to 18 ASCII digits")])
    return int(raw)


def client_address() -> str:
    return request.remote_addr or "unknown"


def stream_slots() -> StreamSlots:
    slots: StreamSlots = current_app.extensions["shop.stream_slots"]
    return slots


@bp.get("/orders/status/<job_id>/stream")
def progress_stream(job_id: str) -> Response:
    after = last_event_id()
    client, slots = client_address(), stream_slots()
    slots.take(client)  # 429 past SSE_MAX_STREAMS(_PER_CLIENT)
    progress_hub = hub()
    waiter = progress_hub.watch(job_id)  # before reading, so no wake-up falls in between

    def release() -> None:
        progress_hub.unwatch(job_id, waiter)
        slots.give_back(client)

    engine = current_app.extensions["shop.stream_engine"] or db.engine
    try:
        # the streams' own pool, the openings asked meanwhile in one read, closed
        # before streaming: an open stream holds no connection
        opening = shared_read("shop.stream_openings", engine, open_each).submit((job_id, after))
    except Exception:
        release()
        raise
    if opening.ended:
        release()
        return Response(status=204, headers={"Cache-Control": "no-cache"})  # stops EventSource
    config = settings()
    poll = config.sse_heartbeat_seconds if progress_hub.wakes else config.sse_poll_seconds

    reads = shared_read("shop.timeline_reads", engine, events_after_each)

    def read_after(after_id: int) -> list[ProgressEvent]:
        return reads.submit((opening.checkout_id, after_id))

    body = follow_progress(
        opening,
        read_after,
        waiter.wait,
        heartbeat_seconds=config.sse_heartbeat_seconds,
        poll_seconds=poll,
        clock=time.monotonic,
        max_seconds=config.sse_max_seconds,
    )
    response = Response(body, mimetype="text/event-stream", headers=SSE_HEADERS)
    response.call_on_close(release)
    return response
