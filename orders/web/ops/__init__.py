"""The ops dashboard (login required) and the health/metrics endpoints.

``bp`` holds every ``/ops`` page and action; its guard (auth.py) refuses anyone not
logged in and every POST without the session's CSRF token. ``health_bp`` holds the
unauthenticated probes (``/healthz``, ``/readyz``, ``/api/health/queues``, ``/metrics``).
"""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("ops", __name__, url_prefix="/ops")

from orders.web.ops import actions, auth, pages, stream  # noqa: E402,F401  (routes)
from orders.web.ops.health import health_bp  # noqa: E402

__all__ = ["bp", "health_bp"]
