"""Every error as RFC 9457 problem+json (API) or one error page (HTML), in one place."""

from __future__ import annotations

import logging
from contextlib import suppress
from typing import Any

from flask import Flask, Response, jsonify, render_template, request
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as SATimeoutError
from werkzeug.exceptions import HTTPException

from orders.errors import DatabaseUnavailable, FieldError, Overloaded, ShopError, ValidationFailed
from orders.web.extensions import db

log = logging.getLogger(__name__)
PROBLEM_BASE = "/problems/"


def problem(
    status: int,
    title: str,
    detail: str = "",
    *,
    type_: str | None = None,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    body: dict[str, Any] = {
        "type": type_ or "about:blank",
        "title": title,
        "status": status,
        "detail": detail or title,
    }
    if errors:
        body["errors"] = [{"field": e.field, "message": e.message} for e in errors]
    body.update(extra)
    response = jsonify(body)
    response.status_code = status
    response.mimetype = "application/problem+json"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _wants_json() -> bool:
    if request.path.startswith("/api/") or request.path in ("/metrics", "/healthz", "/readyz"):
        return True
    return request.accept_mimetypes.best == "application/json"


def _page(status: int, title: str, detail: str) -> Response:
    html = render_template("error.html", status=status, title=title, detail=detail)
    return Response(html, status=status, mimetype="text/html")


def shop_error_response(exc: ShopError) -> Response:
    errors = exc.errors if isinstance(exc, ValidationFailed) else None
    retry_after = getattr(exc, "retry_after", None)  # Overloaded (503), RateLimited (429)
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    status = exc.status if exc.status < 500 or isinstance(exc, Overloaded) else 500
    if status == 500:
        log.error("unhandled %s: %s", type(exc).__name__, exc.message)
    title = exc.title
    if exc.code == "job_not_found":
        title = "Job not found"
    if not _wants_json():
        page = _page(status, title, exc.message)
        page.headers.update(headers or {})  # a 429 page says when to come back too
        return page
    return problem(
        status,
        title,
        exc.message,
        type_=PROBLEM_BASE + exc.code,
        errors=errors,
        headers=headers,
        code=exc.code,
    )


def init_error_handlers(app: Flask) -> None:
    @app.errorhandler(ShopError)
    def on_shop_error(exc: ShopError) -> Response:
        db.session.rollback()
        return shop_error_response(exc)

    @app.errorhandler(HTTPException)
    def on_http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        title = exc.name
        detail = exc.description or title
        if status == 413:
            detail = f"the request body is larger than {app.config['MAX_CONTENT_LENGTH']} bytes"
        if not _wants_json():
            return _page(status, title, detail)
        response = problem(status, title, detail)
        if status == 405 and exc.get_response().headers.get("Allow"):
            response.headers["Allow"] = exc.get_response().headers["Allow"]
        return response

    @app.errorhandler(SATimeoutError)
    @app.errorhandler(OperationalError)
    def on_database_unavailable(exc: Exception) -> Response:
        """No connection came free in ``DB_POOL_TIMEOUT`` (or the database is down):
        the server is overloaded, not broken; the client may retry (the same
        ``Idempotency-Key`` replays whatever was recorded)."""
        with suppress(Exception):  # the connection may be gone with the database
            db.session.rollback()
        log.error("database unavailable on %s %s: %s", request.method, request.path, exc)
        return shop_error_response(DatabaseUnavailable("the database is busy; retry shortly"))

    @app.errorhandler(Exception)
    def on_unexpected(exc: Exception) -> Response:
        db.session.rollback()
        log.exception("unhandled error on %s %s", request.method, request.path)
        if not _wants_json():
            return _page(500, "Internal Server Error", "Something went wrong on our side.")
        return problem(500, "Internal Server Error", "Something went wrong on our side.")
