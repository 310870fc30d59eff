"""Build the outside-world adapters from settings (shared by web and workers)."""

from __future__ import annotations

import functools
import logging
import os
import sys
from pathlib import Path

import pybreaker

from orders.config import Settings
from orders.infra.breaker import BreakerGateway, breaker_namespace, make_breaker
from orders.infra.gateway import PaymentGateway, SimulatedGateway
from orders.infra.http_gateway import HttpGateway
from orders.infra.mail import Mailer, SmtpMailer


def configure_logging(level: str | None = None) -> None:
    level = level or os.environ.get("LOG_LEVEL", "INFO")
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s",
    )


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
            latency_ms=settings.sim_gateway_latency_ms,
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

    return BreakerGateway(inner, breaker)


def build_mailer(settings: Settings) -> Mailer | None:
    return SmtpMailer(settings.smtp_url, settings.mail_from) if settings.smtp_url else None


@functools.cache
def redis_pool(url: str, max_connections: int = 200):  # type: ignore[no-untyped-def]
    """One blocking pool per process (redis-py 8's default pool caps at 100 and raises)."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=5,
        socket_connect_timeout=0.25,
        socket_timeout=5,
        retry=Retry(NoBackoff(), 1),
        health_check_interval=30,
    )
