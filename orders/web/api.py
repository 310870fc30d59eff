"""The JSON API for mobile clients and scripts (see API.md)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request, url_for
from werkzeug.exceptions import RequestEntityTooLarge

from orders.errors import FieldError, ShopError, ValidationFailed
from orders.services import catalog
from orders.services.checkout import place_checkout
from orders.services.payments import retry_payment
from orders.services.status import checkout_status, order_detail
from orders.web.extensions import db, dispatch, publish, settings
from orders.web.problems import problem

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
    return jsonify({"products": catalog.list_products(db.session)})


@bp.post("/checkout")
def checkout() -> Response:
    body = json_body()
    key = idempotency_key()
    session_id = request.headers.get("X-Session-Id")
    if session_id is not None and len(session_id) > 255:
        raise ValidationFailed([FieldError("X-Session-Id", "must be at most 255 characters")])
    placed = place_checkout(
        db.session, settings(), body, dispatch(), idempotency_key=key, session_id=session_id
    )
    publish(placed.public_id)
    return accepted(placed.public_id, placed.status)


@bp.post("/payments")
def payments() -> Response:
    body = json_body()
    if not isinstance(body, dict):
        raise ValidationFailed([FieldError("", "the body must be a JSON object")])
    job_id = body.get("jobId")
    if not isinstance(job_id, str) or not job_id or len(job_id) > 64:
        raise ValidationFailed([FieldError("jobId", "is required")])
    status = retry_payment(db.session, settings(), job_id, body.get("paymentToken"), dispatch())
    publish(job_id)
    return accepted(job_id, status)


@bp.get("/orders/status/<job_id>")
def status(job_id: str) -> Response:
    return jsonify(checkout_status(db.session, job_id))


@bp.get("/orders/<order_number>")
def order(order_number: str) -> Response:
    return jsonify(order_detail(db.session, order_number))


__all__ = ["bp", "ShopError"]
