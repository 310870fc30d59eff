"""``POST /api/checkout/sync``: the seed's synchronous ("traditional") checkout.

The same validation, the same job rows and the same steps as ``POST /api/checkout``
(``orders.pipeline.inline.run_inline`` runs the real runner in this request's
thread); only the answer waits until the order exists (or the checkout failed).
The confirmation email still goes through its queue. It exists so the benchmark can
measure sync against async side by side; ``POST /api/checkout`` is unchanged.

Each call holds a server thread (and database connections) for the whole pipeline,
so it is served only where asked for (``SYNC_CHECKOUT_ENABLED``; unset: development
only; otherwise 404) and limited per client (``SYNC_CHECKOUT_RATE_LIMIT``).
"""

from __future__ import annotations

from flask import Blueprint, Flask, Response, jsonify, url_for

from orders.checkout.overload import process_inline
from orders.checkout.place import place_checkout
from orders.errors import NotFound
from orders.shop.status import checkout_status
from orders.web.api import idempotency_key, json_body
from orders.web.extensions import db, db_session, settings
from orders.web.overload import inline_pipeline
from orders.web.security import limit

bp = Blueprint("sync_api", __name__, url_prefix="/api")


@bp.post("/checkout/sync")
def checkout_sync() -> Response:
    if not settings().sync_checkout_on:
        raise NotFound("the synchronous checkout is not enabled on this server")
    limit("sync")
    body = json_body()
    key = idempotency_key()
    placed = place_checkout(db_session(), settings(), body, None, idempotency_key=key)
    if placed.refs:
        sessions, ctx = inline_pipeline()
        process_inline(sessions, ctx, placed.refs)
    db.session.rollback()
    db.session.expire_all()  # read what the inline run committed
    status = checkout_status(db_session(), placed.public_id)
    response = jsonify(
        {
            "success": status["status"] == "completed",
            "data": {
                "jobId": placed.public_id,
                "trackingUrl": url_for("api.status", job_id=placed.public_id),
                **status,
            },
        }
    )
    response.status_code = 201 if status["status"] == "completed" else 200
    return response


def init_sync_checkout(app: Flask) -> None:
    app.register_blueprint(bp)


__all__ = ["bp", "init_sync_checkout"]
