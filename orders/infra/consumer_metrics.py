"""A consumer's own ``/metrics``, served when ``WORKER_METRICS_PORT`` is set.

The web's ``/metrics`` answers for the whole shop from shared storage (queues, jobs,
checkouts, heartbeats, the breaker): any web worker says the same, whichever consumer
did the work. What only a consumer process knows is served here, so Prometheus scrapes
every consumer: that it is up (Prometheus' own ``up``), its CPU, memory, threads and
open files (``process_*``), and the Huey tasks it ran since it started
(``shop_consumer_*``). A daemon thread serves it; it asks for the web's bearer token
(``METRICS_TOKEN``) when one is set. Unset, nothing listens.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from huey import Huey
from huey import signals as huey_signals
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    gc_collector,
    make_wsgi_app,
    platform_collector,
    process_collector,
)

from orders.models.ops import LATENCY_BUCKETS_MS

log = logging.getLogger(__name__)

PORT_VARIABLE = "WORKER_METRICS_PORT"
TOKEN_VARIABLE = "METRICS_TOKEN"

_ENDED = {
    huey_signals.SIGNAL_COMPLETE: "complete",
    huey_signals.SIGNAL_ERROR: "error",
    huey_signals.SIGNAL_INTERRUPTED: "interrupted",
}
_OTHER = {
    huey_signals.SIGNAL_RETRYING: "retrying",
    huey_signals.SIGNAL_REVOKED: "revoked",
    huey_signals.SIGNAL_CANCELED: "canceled",
    huey_signals.SIGNAL_EXPIRED: "expired",
    huey_signals.SIGNAL_LOCKED: "locked",
}


class ConsumerMetrics:
    """The metrics of one consumer process, on a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        process_collector.ProcessCollector(registry=self.registry)
        platform_collector.PlatformCollector(registry=self.registry)
        gc_collector.GCCollector(registry=self.registry)
        self.threads = Gauge(
            "shop_consumer_threads",
            "Worker threads of this consumer process",
            ["queue"],
            registry=self.registry,
        )
        self.running = Gauge(
            "shop_consumer_tasks_running",
            "Huey tasks running in this consumer process now",
            ["queue"],
            registry=self.registry,
        )
        self.tasks = Counter(
            "shop_consumer_tasks",
            "Huey task executions by this process, by how they ended (complete, error, "
            "interrupted) or what happened instead (retrying, revoked, ...)",
            ["queue", "task", "outcome"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "shop_consumer_task_duration_seconds",
            "Wall time of the Huey tasks this process ran (a batch task runs many jobs)",
            ["queue", "task"],
            buckets=[ms / 1000 for ms in LATENCY_BUCKETS_MS],
            registry=self.registry,
        )
        self._started: dict[str, float] = {}
        self._lock = threading.Lock()

    def on_signal(self, queue: str, signal: str, task: Any, *_exc: object) -> None:
        """A Huey signal handler (every signal of the instance)."""
        name = getattr(task, "name", "unknown")
        if signal == huey_signals.SIGNAL_EXECUTING:
            with self._lock:
                self._started[task.id] = time.monotonic()
            self.running.labels(queue).inc()
        elif signal in _ENDED:
            with self._lock:
                started = self._started.pop(task.id, None)
            if started is not None:
                self.running.labels(queue).dec()
                self.duration.labels(queue, name).observe(time.monotonic() - started)
            self.tasks.labels(queue, name, _ENDED[signal]).inc()
        elif signal in _OTHER:
            self.tasks.labels(queue, name, _OTHER[signal]).inc()


def token_guard(app: Callable[..., Iterable[bytes]], token: str | None) -> Callable[..., Any]:
    """``app``, answering 401 unless ``Authorization: Bearer <token>`` (when ``token``)."""
    if not token:
        return app
    expected = f"Bearer {token}".encode()

    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        given = environ.get("HTTP_AUTHORIZATION", "").encode("latin-1", "replace")
        if hmac.compare_digest(given, expected):
            return app(environ, start_response)
        start_response(
            "401 Unauthorized",
            [("Content-Type", "text/plain; charset=utf-8"), ("WWW-Authenticate", "Bearer")],
        )
        return [b"a bearer token is required\n"]

    return guarded


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the stdlib's name)
        """Scrapes every few seconds would flood the consumer's log."""


def serve(metrics: ConsumerMetrics, host: str, port: int, token: str | None) -> WSGIServer:
    """Serve ``metrics`` on ``host:port`` from a daemon thread; the server is returned
    (``server_port`` tells the port when 0 was asked for)."""
    app = token_guard(make_wsgi_app(metrics.registry), token)
    server = make_server(host, port, app, _Server, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server


_metrics: ConsumerMetrics | None = None
_serving = False
_lock = threading.Lock()


def instrument(huey: Huey, queue: str, threads: int, env: Mapping[str, str] = os.environ) -> None:
    """Count ``huey``'s tasks and, when its consumer starts and ``WORKER_METRICS_PORT``
    is set, serve this process's metrics (once per process)."""
    if not env.get(PORT_VARIABLE):
        return
    metrics = _process_metrics()

    def _count(signal: str, task: Any, *exc: object) -> None:
        metrics.on_signal(queue, signal, task, *exc)

    def _start() -> None:  # runs in every worker thread: the first one serves
        global _serving
        with _lock:
            if _serving:
                return
            _serving = True
        metrics.threads.labels(queue).set(threads)
        metrics.running.labels(queue).set(0)
        host, port = env.get("HOST", "0.0.0.0"), int(env[PORT_VARIABLE])
        try:
            server = serve(metrics, host, port, env.get(TOKEN_VARIABLE) or None)
        except OSError:  # the consumer runs on without it
            log.warning("consumer metrics: cannot listen on %s:%s", host, port, exc_info=True)
            return
        log.info("consumer metrics on http://%s:%s/metrics", host, server.server_port)

    huey.signal()(_count)  # (huey is untyped: registered by call, not as decorators)
    huey.on_startup(name="metrics")(_start)


def _process_metrics() -> ConsumerMetrics:
    global _metrics
    with _lock:
        if _metrics is None:
            _metrics = ConsumerMetrics()
        return _metrics
