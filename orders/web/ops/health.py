"""Probes for load balancers and Prometheus: no login, JSON/problem+json or text.

They say what is up or down and nothing more: no host, pid or exception text (an
attacker reads them too). The details are at ``/ops/health``, for operators.
``/metrics`` needs ``Authorization: Bearer $METRICS_TOKEN`` when a token is set; in
production without one it is not served (in development it stays open).
"""

from __future__ import annotations

import hmac
import logging

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import text
from sqlalchemy.orm import Session

from orders.ops.metrics import CONTENT_TYPE, render_metrics
from orders.ops.probes import broker_reachable
from orders.ops.queues import queue_health
from orders.web.extensions import db, db_session, settings
from orders.web.problems import problem

health_bp = Blueprint("health", __name__)
log = logging.getLogger(__name__)


@health_bp.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


def _database_ok() -> str | None:
    try:
        db.session.execute(text("SELECT 1"))
        db.session.rollback()
        return None
    except Exception as exc:
        db.session.rollback()
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"


def readiness() -> dict[str, str | None]:
    """Each dependency: None when reachable, else why not (for operators' eyes only)."""
    return {"database": _database_ok(), "broker": broker_reachable(settings())}


@health_bp.get("/readyz")
def readyz() -> Response:
    checks = readiness()
    down = [name for name, error in checks.items() if error]
    if down:
        log.warning("not ready: %s", "; ".join(f"{n}: {checks[n]}" for n in down))
        return problem(
            503,
            "Not ready",
            f"unreachable: {', '.join(down)}",
            down=down,
            checks={name: "down" if error else "ok" for name, error in checks.items()},
        )
    return jsonify({"status": "ready", "checks": {name: "ok" for name in checks}})


@health_bp.get("/api/health/queues")
def queues() -> Response:
    healthy, body = queue_health(db_session(), settings())
    db.session.rollback()
    for summary in body["workers"].values():
        del summary["processes"]  # hosts and pids: /ops/health shows them to operators
    response = jsonify(body)
    response.status_code = 200 if healthy else 503
    return response


class _Sessions:
    """The request's session as a context manager for the collector (released after)."""

    def __enter__(self) -> Session:
        return db_session()

    def __exit__(self, *exc: object) -> None:
        db.session.rollback()


@health_bp.get("/metrics")
def metrics() -> Response:
    config = settings()
    if config.metrics_token:
        sent = request.headers.get("Authorization", "")
        expected = f"Bearer {config.metrics_token}"
        if not hmac.compare_digest(sent.encode(), expected.encode()):
            return problem(
                401,
                "Unauthorized",
                "send Authorization: Bearer <METRICS_TOKEN>",
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
    elif config.is_production:
        return problem(404, "Not Found", "metrics are served only with METRICS_TOKEN set")
    return Response(render_metrics(_Sessions, config), content_type=CONTENT_TYPE)
