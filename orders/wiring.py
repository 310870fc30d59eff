"""Build the outside-world adapters from settings (shared by web and workers)."""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

import pybreaker

from orders.config import Settings
from orders.infra.breaker import BreakerGateway, breaker_namespace, make_breaker
from orders.infra.gateway import PaymentGateway, SimulatedGateway
from orders.infra.http_gateway import HttpGateway
from orders.infra.mail import Mailer, SmtpMailer
from orders.infra.pubsub import Hub, progress_channel, redis_publisher
from orders.infra.tracing import traced_gateway, traced_mailer
from orders.logcontext import ContextFilter, JsonFormatter


def configure_logging(level: str | None = None, fmt: str | None = None) -> None:
    """``LOG_LEVEL``; ``LOG_FORMAT=json`` for one JSON object per line (with checkout_id)."""
    level = level or os.environ.get("LOG_LEVEL", "INFO")
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    if (fmt or os.environ.get("LOG_FORMAT", "text")).lower() == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s")
        )
    logging.basicConfig(level=level.upper(), handlers=[handler])


def build_gateway(settings: Settings) -> PaymentGateway:
    """The gateway (HTTP when ``GATEWAY_URL`` is set, else simulated), behind the breaker."""
    inner: PaymentGateway
    if settings.gateway_url:
        inner = HttpGateway(
            settings.gateway_url,
            api_key=settings.extra.get("GATEWAY_API_KEY") or os.environ.get("GATEWAY_API_KEY"),
            timeout_seconds=settings.gateway_call_timeout,
        )
    else:
        ledger = settings.extra.get("SIM_GATEWAY_LEDGER") or os.environ.get("SIM_GATEWAY_LEDGER")
        path = Path(ledger) if ledger else settings.data_dir.resolve() / "sim-gateway.db"
        inner = SimulatedGateway(
            path,
            latency_ms=settings.step_latency_ms("gateway"),
            timeout_seconds=settings.gateway_call_timeout,
        )

    def breaker() -> pybreaker.CircuitBreaker:
        client = None
        if settings.redis_url:
            import redis

            client = redis.Redis(connection_pool=redis_pool(settings.redis_url))
        return make_breaker(
            settings.breaker_fail_max,
            settings.breaker_reset_seconds,
            client,
            breaker_namespace(settings.queue_prefix),
        )

    return traced_gateway(BreakerGateway(inner, breaker))  # a span per call when tracing


def build_mailer(settings: Settings) -> Mailer | None:
    mailer = SmtpMailer(settings.smtp_url, settings.mail_from) if settings.smtp_url else None
    return traced_mailer(mailer)  # a span per message when tracing


@functools.cache
def redis_pool(url: str, max_connections: int = 200):  # type: ignore[no-untyped-def]
    """One blocking pool per process (redis-py 8's default pool caps at 100 and raises).

    The one factory for every Redis user: a ``redis+sentinel://`` URL (built from
    ``REDIS_SENTINELS``) gives a pool that asks the sentinels for the master.
    """
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    if url.startswith(SENTINEL_SCHEME):
        return _sentinel_pool(url, max_connections)
    return redis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=5,
        socket_connect_timeout=0.25,
        socket_timeout=5,
        retry=Retry(NoBackoff(), 1),
        health_check_interval=30,
    )


SENTINEL_SCHEME = "redis+sentinel://"


def _sentinel_pool(url: str, max_connections: int):  # type: ignore[no-untyped-def]
    """``redis+sentinel://[:pw@]h:p,h:p/master/db[?sentinel_password=...]`` -> master pool.

    Socket timeouts stay above Huey's 1 s blocking read (HUEY.md); a connection to a
    demoted or dead master fails, is dropped, and the next one goes to the new master.
    Unlike the plain pool it does not block when all ``max_connections`` are in use.
    """
    from urllib.parse import parse_qs, unquote, urlsplit

    from redis.sentinel import Sentinel, SentinelConnectionPool

    parts = urlsplit(url)
    auth, _, hosts = parts.netloc.rpartition("@")
    password = (unquote(auth.partition(":")[2]) or None) if auth else None
    nodes = [(h.rpartition(":")[0], int(h.rpartition(":")[2])) for h in hosts.split(",")]
    master, _, db = parts.path.strip("/").partition("/")
    sentinel_password = parse_qs(parts.query).get("sentinel_password", [None])[0]
    timeouts = {"socket_connect_timeout": 1, "socket_timeout": 5}
    sentinel = Sentinel(
        nodes,
        sentinel_kwargs={**timeouts, "password": sentinel_password},
        **timeouts,
    )
    return SentinelConnectionPool(
        master,
        sentinel,
        password=password,
        db=int(db or 0),
        max_connections=max_connections,
        health_check_interval=30,
        **timeouts,
    )


def _no_publish(_public_id: str) -> None:
    return None


def build_publisher(settings: Settings) -> Callable[[str], None]:
    """``publish(public_id)`` after a commit: wakes live streams (Redis only)."""
    if not settings.redis_url:
        return _no_publish  # embedded mode: streams poll the database
    import redis

    client = redis.Redis(connection_pool=redis_pool(settings.redis_url))
    return redis_publisher(client, progress_channel(settings.queue_prefix))


def build_progress_hub(settings: Settings) -> Hub:
    """The one subscription of this process, fanned out to its streams."""
    url = settings.redis_url
    if not url:
        return Hub(None, progress_channel(settings.queue_prefix))

    def subscriber():  # type: ignore[no-untyped-def]
        import redis

        # through the one pool factory, so a Sentinel URL follows failover here too
        return redis.Redis(connection_pool=redis_pool(url))

    return Hub(subscriber, progress_channel(settings.queue_prefix))
