"""``GET /api/orders/status/<jobId>/stream``: live progress as Server-Sent Events.

The view looks the checkout up, computes the first events, and releases its
database session before the stream starts: an open stream holds no connection.
While streaming it waits on this process's one Redis subscription (the hub) or,
in embedded mode, polls; either way it reads new timeline rows in a short session
of its own.
"""

from __future__ import annotations

import logging
import time

from flask import Blueprint, Flask, Response, current_app, request
from sqlalchemy.orm import Session

from orders.errors import FieldError, ValidationFailed
from orders.infra.pubsub import Hub
from orders.services.progress import (
    ProgressEvent,
    events_after,
    follow_progress,
    is_finished,
    open_progress,
)
from orders.web.extensions import db, settings
from orders.wiring import build_progress_hub

bp = Blueprint("stream", __name__, url_prefix="/api")
log = logging.getLogger(__name__)

SSE_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


def init_stream(app: Flask) -> None:
    app.extensions["shop.progress_hub"] = build_progress_hub(app.extensions["shop.settings"])
    app.register_blueprint(bp)


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
    try:
        opening = open_progress(db.session, job_id, after)
        finished = not opening.events and is_finished(db.session, opening.checkout_id)
    except Exception:
        progress_hub.unwatch(job_id, waiter)
        raise
    engine = db.engine
    db.session.remove()  # released before streaming: an open stream holds no connection
    if after is not None and finished:
        progress_hub.unwatch(job_id, waiter)
        return Response(status=204, headers={"Cache-Control": "no-cache"})  # stops EventSource
    config = settings()
    poll = config.sse_heartbeat_seconds if progress_hub.wakes else config.sse_poll_seconds

    def read_after(after_id: int) -> list[ProgressEvent]:
        try:
            with Session(engine) as session:
                return events_after(session, opening.checkout_id, after_id)
        except Exception as exc:  # the database may be briefly away: keep the stream, retry
            log.warning("stream %s: could not read the timeline (%s)", job_id, exc)
            return []

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
