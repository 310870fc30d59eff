"""``GET /api/orders/status/<jobId>/stream``: live progress as Server-Sent Events.

The view looks the checkout up and computes the first events in a short session on
the streams' own pool, closed before the stream starts: an open stream holds no
connection.
While streaming it waits on this process's one Redis subscription (the hub) or,
in embedded mode, polls; either way it reads new timeline rows in a short session
of its own.
"""

from __future__ import annotations

import time

from flask import Blueprint, Flask, Response, current_app, request
from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session

from orders.config import Settings
from orders.db import ping_when_idle
from orders.errors import FieldError, ValidationFailed
from orders.infra.pubsub import Hub
from orders.shop.progress import (
    ProgressEvent,
    events_after,
    follow_progress,
    is_finished,
    open_progress,
)
from orders.web.extensions import db, settings
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


def hub() -> Hub:
    value: Hub = current_app.extensions["shop.progress_hub"]
    return value


def last_event_id() -> int | None:
    raw = request.headers.get("Last-Event-ID") or request.args.get("lastEventId")
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise ValidationFailed([FieldError("Last-Event-ID", "must be an event id (digits)")])
    return int(raw)


@bp.get("/orders/status/<job_id>/stream")
def progress_stream(job_id: str) -> Response:
    after = last_event_id()
    progress_hub = hub()
    waiter = progress_hub.watch(job_id)  # before reading, so no wake-up falls in between
    engine = current_app.extensions["shop.stream_engine"] or db.engine
    try:
        # the streams' own pool, and a session closed before streaming: an open stream
        # holds no connection
        with Session(engine) as reader:
            opening = open_progress(reader, job_id, after)
            finished = not opening.events and is_finished(reader, opening.checkout_id)
    except Exception:
        progress_hub.unwatch(job_id, waiter)
        raise
    if after is not None and finished:
        progress_hub.unwatch(job_id, waiter)
        return Response(status=204, headers={"Cache-Control": "no-cache"})  # stops EventSource
    config = settings()
    poll = config.sse_heartbeat_seconds if progress_hub.wakes else config.sse_poll_seconds

    def read_after(after_id: int) -> list[ProgressEvent]:
        with engine.connect() as conn:  # Core, no ORM session: cheap per wake-up
            return events_after(conn, opening.checkout_id, after_id)

    body = follow_progress(
        opening,
        read_after,
        waiter.wait,
        heartbeat_seconds=config.sse_heartbeat_seconds,
        poll_seconds=poll,
        clock=time.monotonic,
    )
    response = Response(body, mimetype="text/event-stream", headers=SSE_HEADERS)
    response.call_on_close(lambda: progress_hub.unwatch(job_id, waiter))
    return response
