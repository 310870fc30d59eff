"""A fixed-window rate limiter: ``20/second;300/minute`` notation, Redis or in-process.

Each limit counts hits per client in the current window (``INCR`` + ``EXPIRE`` in
Redis, shared by every web worker; a dict in this process when Redis is not
configured). The hits counted while a round trip is under way share the next one
(:class:`~orders.infra.combiner.Combiner`): under load one pipeline counts many
requests. If Redis is unreachable the limiter lets the request through: a broker
outage must not stop checkouts (the overload policy deals with that).
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from orders.environ import ConfigError
from orders.infra.combiner import Combiner

UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_LIMIT = re.compile(r"^\s*(\d+)\s*(?:/|per)\s*(\d*)\s*(second|minute|hour|day)s?\s*$")


@dataclass(frozen=True)
class Limit:
    count: int
    seconds: int

    def __str__(self) -> str:
        return f"{self.count}/{self.seconds}s"


def parse_limits(text: str, setting: str = "CHECKOUT_RATE_LIMIT") -> list[Limit]:
    """``"20/second;300/minute"`` -> two limits; ``"off"`` (or empty) -> none."""
    if text.strip().lower() in ("", "off", "none", "0"):
        return []
    limits = []
    for part in re.split(r"[;,]", text):
        match = _LIMIT.match(part.lower())
        if not match or int(match[1]) < 1:
            raise ConfigError(f"{setting}: cannot read {part.strip()!r}")
        limits.append(Limit(int(match[1]), int(match[2] or 1) * UNITS[match[3]]))
    return limits


class FixedWindowLimiter:
    def __init__(
        self,
        limits: list[Limit],
        redis_url: str | None = None,
        prefix: str = "shop",
        name: str = "checkout",
    ) -> None:
        self.limits = limits
        self.redis_url = redis_url
        self.prefix = prefix
        self.name = name  # what is counted: one limiter's keys never meet another's
        self._counts: dict[tuple[str, int, int], int] = {}
        self._lock = threading.Lock()
        self._redis: Any = None  # the client, made on first use
        self._hits: Combiner[list[str], list[int]] = Combiner(self._incr_redis)

    def hit(self, client: str, now: float | None = None) -> int | None:
        """Count one request; None if allowed, else seconds until the client may retry."""
        if not self.limits:
            return None
        now = time.time() if now is None else now
        windows = [(limit, int(now // limit.seconds)) for limit in self.limits]
        counts = None
        if self.redis_url:
            keys = [
                f"{self.prefix}:ratelimit:{self.name}:{client}:{limit.seconds}:{window}"
                for limit, window in windows
            ]
            counts = self._hits.submit(keys)
        if counts is None:
            counts = self._incr_local(client, windows)
        waits = [
            math.ceil((window + 1) * limit.seconds - now)
            for (limit, window), count in zip(windows, counts, strict=True)
            if count > limit.count
        ]
        return max(1, max(waits)) if waits else None

    def _incr_local(self, client: str, windows: list[tuple[Limit, int]]) -> list[int]:
        with self._lock:
            counts = []
            for limit, window in windows:
                key = (client, limit.seconds, window)
                self._counts[key] = self._counts.get(key, 0) + 1
                counts.append(self._counts[key])
            if len(self._counts) > 100_000:  # drop past windows
                current = {(lim.seconds, win) for lim, win in windows}
                self._counts = {k: v for k, v in self._counts.items() if k[1:] in current}
            return counts

    def _incr_redis(self, hits: Sequence[list[str]]) -> list[list[int]]:
        """Count the hits (each its window keys) in one pipelined round trip; zeros (let
        through) if Redis is away."""
        import redis

        from orders.infra.redis_pool import redis_pool

        if self._redis is None:
            self._redis = redis.Redis(connection_pool=redis_pool(self.redis_url or ""))
        seconds = [limit.seconds for limit in self.limits]
        try:
            pipe = self._redis.pipeline(transaction=False)  # INCR is atomic on its own
            for keys in hits:
                for key, window in zip(keys, seconds, strict=True):
                    pipe.incr(key)
                    pipe.expire(key, window + 1)
            replies = iter(pipe.execute()[::2])
        except redis.RedisError:
            return [[0] * len(keys) for keys in hits]  # fail open
        return [[int(next(replies)) for _ in keys] for keys in hits]
