"""Is the queue broker reachable? Asked by the overload policy on each checkout.

A Redis broker is pinged through the shared pool (connect timeout 0.25 s; a refused
connection fails in well under a millisecond) and the answer is remembered for a
second, so a dead broker costs a checkout at most one failed ping per second.
The embedded SqliteHuey broker is a local file: always reachable.
"""

from __future__ import annotations

import threading
import time


class BrokerProbe:
    def __init__(self, redis_url: str | None, remember_seconds: float = 1.0) -> None:
        self.redis_url = redis_url
        self.remember_seconds = remember_seconds
        self._lock = threading.Lock()
        self._checked_at = float("-inf")
        self._up = True

    def __call__(self) -> bool:
        if not self.redis_url:
            return True
        with self._lock:
            if time.monotonic() - self._checked_at < self.remember_seconds:
                return self._up
            self._up = self._ping()
            self._checked_at = time.monotonic()
            return self._up

    def _ping(self) -> bool:
        import redis

        from orders.infra.redis_pool import redis_pool

        try:
            client = redis.Redis(connection_pool=redis_pool(self.redis_url))
            return bool(client.ping())
        except redis.RedisError:
            return False
