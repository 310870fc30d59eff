"""Build the outside-world adapters from settings (shared by web and workers)."""

from __future__ import annotations

import functools
import logging
import os
import sys
from pathlib import Path

from orders.config import Settings
from orders.infra.gateway import PaymentGateway, SimulatedGateway
from orders.infra.mail import Mailer, SmtpMailer


def configure_logging(level: str | None = None) -> None:
    level = level or os.environ.get("LOG_LEVEL", "INFO")
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s",
    )


def build_gateway(settings: Settings) -> PaymentGateway:
    ledger = settings.extra.get("SIM_GATEWAY_LEDGER") or os.environ.get("SIM_GATEWAY_LEDGER")
    path = Path(ledger) if ledger else settings.data_dir.resolve() / "sim-gateway.db"
    return SimulatedGateway(path, latency_ms=settings.step_latency_ms("gateway"))


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
        socket_connect_timeout=1,
        socket_timeout=5,
        retry=Retry(NoBackoff(), 1),
        health_check_interval=30,
    )
