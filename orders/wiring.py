"""Build the outside-world adapters from settings (shared by web and workers)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pybreaker

from orders.config import Settings
from orders.infra.breaker import BreakerGateway, breaker_namespace, make_breaker
from orders.infra.gateway import PaymentGateway, SimulatedGateway
from orders.infra.http_gateway import HttpGateway
from orders.infra.mail import Mailer, SmtpMailer
from orders.infra.pubsub import Hub, progress_channel, redis_publisher
from orders.infra.redis_pool import redis_pool
from orders.infra.traced import traced_gateway, traced_mailer
from orders.logcontext import ContextFilter, JsonFormatter

if TYPE_CHECKING:  # redis is imported where it is used
    from redis import Redis


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

    def subscriber() -> Redis:
        import redis

        # through the one pool factory, so a Sentinel URL follows failover here too
        return redis.Redis(connection_pool=redis_pool(url))

    return Hub(subscriber, progress_channel(settings.queue_prefix))
