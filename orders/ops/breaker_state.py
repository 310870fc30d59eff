"""The payment gateway's circuit breaker state, as pybreaker keeps it in Redis.

Contract with the resilience side (pybreaker ``CircuitRedisStorage``): the breaker is
built with ``namespace=breaker_namespace(settings)``, so its keys are

    {QUEUE_PREFIX}:payment-gateway:pybreaker:state          "closed" | "open" | "half-open"
    {QUEUE_PREFIX}:payment-gateway:pybreaker:fail_counter
    {QUEUE_PREFIX}:payment-gateway:pybreaker:success_counter
    {QUEUE_PREFIX}:payment-gateway:pybreaker:opened_at

Without Redis (the embedded SQLite setup) there is no shared state: "unknown".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orders.config import Settings
from orders.infra import breaker

if TYPE_CHECKING:
    from redis import Redis

STATES = ("closed", "open", "half-open")


def breaker_namespace(settings: Settings) -> str:
    """The breaker's Redis namespace: the one ``orders.infra.breaker`` builds it with."""
    return breaker.breaker_namespace(settings.queue_prefix)


def breaker_key(settings: Settings, part: str = "state") -> str:
    return f"{breaker_namespace(settings)}:pybreaker:{part}"


def _redis(settings: Settings) -> Redis:
    import redis

    from orders.infra.redis_pool import redis_pool

    assert settings.redis_url
    return redis.Redis(connection_pool=redis_pool(settings.redis_url))


def breaker_state(settings: Settings) -> str:
    """ "closed", "open", "half-open", or "unknown" (no Redis, no state yet, Redis down)."""
    if not settings.redis_url:
        return "unknown"
    try:
        value = _redis(settings).get(breaker_key(settings))
    except Exception:
        return "unknown"
    state = value.decode() if isinstance(value, bytes) else value
    return state if state in STATES else "unknown"


def reset_breaker(settings: Settings) -> bool:
    """Close the breaker and zero its counters. False when there is no Redis state to reset."""
    if not settings.redis_url:
        return False
    client = _redis(settings)
    pipe = client.pipeline()
    pipe.set(breaker_key(settings), "closed")
    pipe.set(breaker_key(settings, "fail_counter"), 0)
    pipe.set(breaker_key(settings, "success_counter"), 0)
    pipe.delete(breaker_key(settings, "opened_at"))
    pipe.execute()
    return True
