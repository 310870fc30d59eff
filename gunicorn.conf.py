"""gunicorn settings. Progress streams (SSE) hold a connection each, so the worker
class is chosen by measurement (bench/sse_streams.py; figures in docs/performance.md):

- gevent: 1,000 concurrent streams on one 2-core box, all delivered. Chosen when the
  database is PostgreSQL: psycopg 3 cooperates with gevent (bench/pg_gevent_check.py).
- gthread: serves exactly workers x threads streams at once; the rest wait. Kept for
  the embedded SQLite mode, whose driver blocks (a busy-timeout wait would freeze
  every greenlet of the worker); one developer's browser needs a handful of streams.

``GUNICORN_WORKER_CLASS`` overrides the choice.
"""

import os
from typing import Any


def _default_worker_class() -> str:
    database_url = os.environ.get("DATABASE_URL", "")
    return "gevent" if database_url.startswith(("postgres://", "postgresql")) else "gthread"


bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = os.environ.get("GUNICORN_WORKER_CLASS") or _default_worker_class()
threads = int(os.environ.get("GUNICORN_THREADS", "16"))
worker_connections = int(os.environ.get("GUNICORN_WORKER_CONNECTIONS", "2000"))
timeout = 60
graceful_timeout = 20
# Idle keep-alive connections stay open longer than a client (or a load balancer:
# AWS ALB 60 s, nginx 60 s) keeps one idle: at 5 s, a shopper who thought for ~5 s sent
# the next POST on a connection the server was closing (measured: ServerDisconnectedError
# on 3 of 467 sync checkouts in a bench run with a 5 s keep-alive, none at 75 s).
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "75"))
accesslog = "-" if os.environ.get("ACCESS_LOG") else None
errorlog = "-"
control_socket_disable = True


def on_starting(server: Any) -> None:
    """Refuse unsafe production settings in the master, before any worker is forked:
    one clear message and exit status 1 (a worker that fails to boot would print a
    traceback per worker instead)."""
    from orders.worker import settings_for_start

    settings_for_start()


def post_worker_init(worker: Any) -> None:
    """Open the worker's kept database connections (``DB_POOL_WARM=0`` turns this off),
    then freeze the start-up objects."""
    if os.environ.get("DB_POOL_WARM", "1") != "0":
        _warm_database_pool(worker.wsgi)
    from orders.heap import freeze_startup_objects

    freeze_startup_objects()


def worker_exit(server: Any, worker: Any) -> None:
    """Export the worker's buffered spans before it goes (when tracing is on)."""
    from orders.infra import tracing

    tracing.shutdown()


def _warm_database_pool(app: Any) -> None:
    """The first requests after a start (a deploy, a crashed worker) find their
    connections open (measured cold at 200 checkouts/s: 10-14 new PostgreSQL sessions
    and p99 52-129 ms in the first second; warmed: 2 sessions and p99 34.5 ms)."""
    from orders.db import warm_pool

    extension = getattr(app, "extensions", {}).get("sqlalchemy")
    if extension is None:  # not the shop (the bench's bare endpoint)
        return
    with app.app_context():
        warm_pool(extension.engine)


if os.environ.get("LOG_FORMAT", "").lower() == "json":  # gunicorn's own lines as JSON too
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": "orders.logcontext.ContextFilter"}},
        "formatters": {"json": {"()": "orders.logcontext.JsonFormatter"}},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "filters": ["context"],
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": os.environ.get("LOG_LEVEL", "INFO").upper(), "handlers": ["console"]},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": [], "propagate": True},
            "gunicorn.access": {"level": "INFO", "handlers": [], "propagate": True},
        },
    }
