"""Probes for load balancers and Prometheus: no login, JSON/problem+json or text."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify
from sqlalchemy import text
from sqlalchemy.orm import Session

from orders.ops.metrics import CONTENT_TYPE, render_metrics
from orders.ops.probes import broker_reachable
from orders.ops.queues import queue_health
from orders.web.extensions import db, db_session, settings
from orders.web.problems import problem

health_bp = Blueprint("health", __name__)


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


@health_bp.get("/readyz")
def readyz() -> Response:
    checks = {"database": _database_ok(), "broker": broker_reachable(settings())}
    down = [name for name, error in checks.items() if error]
    if down:
        return problem(
            503,
            "Not ready",
            f"unreachable: {', '.join(down)}",
            down=down,
            checks={name: error or "ok" for name, error in checks.items()},
        )
    return jsonify({"status": "ready", "checks": {name: "ok" for name in checks}})


@health_bp.get("/api/health/queues")
def queues() -> Response:
    healthy, body = queue_health(db_session(), settings())
    db.session.rollback()
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
    return Response(render_metrics(_Sessions, settings()), content_type=CONTENT_TYPE)
