"""``/ops/stream``: the overview numbers pushed over SSE every couple of seconds."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

from flask import Response, request, session, stream_with_context

from orders.ops.queues import overview
from orders.ops.sessions import resume_session
from orders.web.extensions import commit, db, db_session, settings
from orders.web.ops import bp
from orders.web.ops.auth import SESSION_KEY
from orders.web.stream import client_address, stream_slots

INTERVAL_SECONDS = 2.0
SESSION_CHECK_EVENTS = 15
"""The session is checked again every ~30 s: a logout or revocation ends the stream."""


@bp.get("/stream")
def stream() -> Response:
    """The overview every two seconds, for at most ``SSE_MAX_SECONDS`` (the browser's
    EventSource then reconnects); it counts against the process's stream cap."""
    span = "day" if request.args.get("span") == "day" else "hour"
    config = settings()
    token = str(session.get(SESSION_KEY) or "")
    client, slots = client_address(), stream_slots()
    slots.take(client)

    def events() -> Iterator[str]:
        yield f"retry: {int(INTERVAL_SECONDS * 1000)}\n: ops overview\n\n"
        end = time.monotonic() + config.sse_max_seconds
        number = 0
        while time.monotonic() < end:
            try:
                if number and number % SESSION_CHECK_EVENTS == 0:
                    live = resume_session(db_session(), config, token) is not None
                    commit()
                    if not live:
                        return
                data = overview(db_session(), config, span)
            finally:
                db.session.rollback()  # hold no transaction or connection while we sleep
                db.session.close()
            yield f"id: {number}\nevent: overview\ndata: {json.dumps(data)}\n\n"
            number += 1
            time.sleep(max(0.0, min(INTERVAL_SECONDS, end - time.monotonic())))

    response = Response(
        stream_with_context(events()),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
    response.call_on_close(lambda: slots.give_back(client))
    return response
