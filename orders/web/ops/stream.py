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

INTERVAL_SECONDS = 2.0
MAX_EVENTS = 150
"""About five minutes per connection; the browser's EventSource then reconnects."""
SESSION_CHECK_EVENTS = 15
"""The session is checked again every ~30 s: a logout or revocation ends the stream."""


@bp.get("/stream")
def stream() -> Response:
    span = "day" if request.args.get("span") == "day" else "hour"
    config = settings()
    token = str(session.get(SESSION_KEY) or "")

    def events() -> Iterator[str]:
        yield f"retry: {int(INTERVAL_SECONDS * 1000)}\n: ops overview\n\n"
        for number in range(MAX_EVENTS):
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
            time.sleep(INTERVAL_SECONDS)

    return Response(
        stream_with_context(events()),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
