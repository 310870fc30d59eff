"""``POST /api/checkout/sync``: the seed's synchronous ("traditional") checkout.

The same validation, the same job rows and the same steps as ``POST /api/checkout``
(``orders.services.inline.run_inline`` runs the real runner in this request's
thread); only the answer waits until the order exists (or the checkout failed).
The confirmation email still goes through its queue. It exists so the benchmark can
measure sync against async side by side; ``POST /api/checkout`` is unchanged.
"""

from __future__ import annotations

from flask import Blueprint, Flask, Response, current_app, jsonify, url_for
from sqlalchemy.orm import Session, sessionmaker

from orders.jobtypes import CREATE_ORDER, PROCESS_PAYMENT, RESERVE_STOCK, UPDATE_INVENTORY
from orders.services.checkout import place_checkout
from orders.services.context import PipelineContext
from orders.services.inline import run_inline
from orders.services.jobs import send_after_commit
from orders.services.status import checkout_status
from orders.web.api import idempotency_key, json_body
from orders.web.extensions import db, dispatch, settings
from orders.wiring import build_gateway, build_mailer

bp = Blueprint("sync_api", __name__, url_prefix="/api")

CHECKOUT_STEPS = frozenset(
    t.name for t in (RESERVE_STOCK, PROCESS_PAYMENT, CREATE_ORDER, UPDATE_INVENTORY)
)


def _inline_runtime(app: Flask) -> tuple[sessionmaker[Session], PipelineContext]:
    runtime = app.extensions.get("shop.inline")
    if runtime is None:
        config = settings()
        runtime = (
            sessionmaker(db.engine, expire_on_commit=False),
            PipelineContext(
                settings=config,
                gateway=build_gateway(config),
                mailer=build_mailer(config),
                dispatch=dispatch(),
                publish=app.extensions["shop.publish"],  # inline runs wake streams too
            ),
        )
        app.extensions["shop.inline"] = runtime
    return runtime


@bp.post("/checkout/sync")
def checkout_sync() -> Response:
    body = json_body()
    key = idempotency_key()
    placed = place_checkout(db.session, settings(), body, None, idempotency_key=key)
    sessions, ctx = _inline_runtime(current_app._get_current_object())  # type: ignore[attr-defined]
    if placed.refs:
        leftover = run_inline(sessions, ctx, placed.refs, include=CHECKOUT_STEPS)
        send_after_commit(db.session, leftover, ctx.dispatch)
    db.session.expire_all()
    status = checkout_status(db.session, placed.public_id)
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
