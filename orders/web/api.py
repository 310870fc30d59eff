"""The JSON API for mobile clients and scripts (see API.md)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request, session, url_for
from werkzeug.exceptions import RequestEntityTooLarge

from orders.checkout.card_retry import retry_payment
from orders.checkout.overload import overload_reason, process_inline
from orders.checkout.place import place_checkout
from orders.errors import FieldError, Overloaded, ShopError, ValidationFailed
from orders.shop import catalog
from orders.shop.status import checkout_status, order_detail
from orders.web.extensions import db, db_session, dispatch, publish, settings
from orders.web.openapi import openapi_document
from orders.web.overload import broker_up, inline_pipeline
from orders.web.problems import problem
from orders.web.security import limit, limit_checkout
from orders.web.shop import CSRF_KEY as SHOP_SESSION_KEY  # the shop's checkouts' session_id
from orders.web.tracing import traced_request

bp = Blueprint("api", __name__, url_prefix="/api")


def json_body() -> Any:
    """The request's JSON, or a 415/400 problem (raised as a response)."""
    if request.mimetype != "application/json":
        raise _Abort(problem(415, "Unsupported Media Type", "send Content-Type: application/json"))
    try:
        return request.get_json(force=True, silent=False)
    except RequestEntityTooLarge:
        raise
    except Exception:
        raise _Abort(problem(400, "Malformed JSON", "the request body is not valid JSON")) from None


class _Abort(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


@bp.errorhandler(_Abort)
def _on_abort(exc: _Abort) -> Response:
    return exc.response


def idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not key or len(key) > 255 or not key.isprintable() or not key.isascii():
        raise ValidationFailed(
            [FieldError("Idempotency-Key", "must be 1-255 printable ASCII characters")]
        )
    return key


def accepted(public_id: str, status: str) -> Response:
    tracking = url_for("api.status", job_id=public_id)
    response = jsonify(
        {
            "success": True,
            "message": "Order processing started",
            "data": {
                "jobId": public_id,
                "status": status,
                "estimatedProcessingTime": "2-5 seconds",
                "trackingUrl": tracking,
                "streamUrl": f"{tracking}/stream",
            },
        }
    )
    response.status_code = 202
    response.headers["Location"] = tracking
    response.headers["Retry-After"] = "1"
    return response


@bp.get("/products")
def products() -> Response:
    return jsonify({"products": catalog.list_products(db_session())})


@bp.post("/checkout")
@traced_request
def checkout() -> Response:
    limit_checkout()
    body = json_body()
    key = idempotency_key()
    session_id = request.headers.get("X-Session-Id")
    if session_id is not None and len(session_id) > 255:
        raise ValidationFailed([FieldError("X-Session-Id", "must be at most 255 characters")])
    config = settings()
    reason = None
    if config.overload_policy != "accept":
        reason = overload_reason(db_session(), config, broker_up)
    if reason is not None and config.overload_policy == "shed":
        raise Overloaded(f"checkout is unavailable for now: {reason}", retry_after=5)
    inline = reason is not None  # the sync policy: run the steps in this request
    placed = place_checkout(
        db_session(),
        config,
        body,
        None if inline else dispatch(),
        idempotency_key=key,
        session_id=session_id,
    )
    # no publish here: nobody can be streaming a checkout whose id this answer carries
    if not inline:
        return accepted(placed.public_id, placed.status)
    sessions, ctx = inline_pipeline()
    process_inline(sessions, ctx, placed.refs)
    return processed(placed.public_id)


def processed(public_id: str) -> Response:
    """The sync policy's answer: the checkout's final status (200)."""
    db.session.rollback()
    db.session.expire_all()  # read what the inline run committed
    result = checkout_status(db_session(), public_id)
    response = accepted(public_id, result["status"])
    body = response.get_json()
    body["message"] = "Order processed"
    body["data"]["result"] = result
    response.set_data(current_app.json.dumps(body))
    response.status_code = 200
    del response.headers["Retry-After"]
    return response


@bp.post("/payments")
def payments() -> Response:
    limit("payment")
    body = json_body()
    if not isinstance(body, dict):
        raise ValidationFailed([FieldError("", "the body must be a JSON object")])
    job_id = body.get("jobId")
    if not isinstance(job_id, str) or not job_id or len(job_id) > 64:
        raise ValidationFailed([FieldError("jobId", "is required")])
    status = retry_payment(db_session(), settings(), job_id, body.get("paymentToken"), dispatch())
    publish(job_id)
    return accepted(job_id, status)


@bp.get("/orders/status/<job_id>")
def status(job_id: str) -> Response:
    return jsonify(checkout_status(db_session(), job_id))


@bp.get("/orders/<order_number>")
def order(order_number: str) -> Response:
    """The public view, or the full one for the shopper: ``X-Job-Id`` (or ``?jobId=``)
    carrying the checkout's id, or the session it was placed from (``X-Session-Id``,
    or the shop's cookie)."""
    job_id = request.headers.get("X-Job-Id") or request.args.get("jobId")
    sessions = (request.headers.get("X-Session-Id"), session.get(SHOP_SESSION_KEY))
    return jsonify(order_detail(db_session(), order_number, job_id=job_id, session_ids=sessions))


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(openapi_document())


__all__ = ["bp", "ShopError"]
