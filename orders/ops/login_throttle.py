"""The login throttle: attempts per address and per account, counted atomically.

Every attempt takes a slot *before* its password is checked (a success gives it
back), so concurrent attempts cannot slip past: each one's count comes from a single
atomic increment. Windows are fixed, starting at a key's first attempt.

- Redis (when configured): one Lua script increments the address and then the
  account, each with ``INCR`` and an ``EXPIRE`` on the first hit; every web worker
  shares the counts.
- The database otherwise, and whenever Redis cannot be reached: one
  ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING`` per key, in its own short
  transaction. A Redis outage therefore still answers 429 past the limit, never a 500,
  and never fails closed on operators while the database is up (counts start afresh
  in the database during the outage: at most one extra window's worth of attempts).
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable
from datetime import datetime, timedelta

import redis
from sqlalchemy import Connection, Engine, case, update
from sqlalchemy.dialects import postgresql, sqlite

from orders.config import Settings
from orders.db import utcnow
from orders.models import LoginCounter
from orders.models.tables import LOGIN_COUNTERS

log = logging.getLogger(__name__)

# KEYS: address, account. ARGV: window seconds, address limit, account limit.
# Returns {0, 0} when allowed, else {1 (address) or 2 (account), seconds to wait}.
ATTEMPT_SCRIPT = """
local limits = {tonumber(ARGV[2]), tonumber(ARGV[3])}
for i = 1, 2 do
  local count = redis.call('INCR', KEYS[i])
  if count == 1 then redis.call('EXPIRE', KEYS[i], ARGV[1]) end
  if count > limits[i] then
    local ttl = redis.call('TTL', KEYS[i])
    if ttl < 0 then redis.call('EXPIRE', KEYS[i], ARGV[1]); ttl = tonumber(ARGV[1]) end
    return {i, ttl}
  end
end
return {0, 0}
"""
# Give a slot back (a login that succeeded), never below zero.
RELEASE_SCRIPT = """
for i = 1, #KEYS do
  if tonumber(redis.call('GET', KEYS[i]) or '0') > 0 then redis.call('DECR', KEYS[i]) end
end
return 0
"""


def throttle_keys(address: str, account: str) -> tuple[str, str]:
    digest = hashlib.sha256(account.strip().lower().encode()).hexdigest()[:40]
    return f"addr:{address[:64]}", f"user:{digest}"


class LoginThrottle:
    """``attempt()`` before checking a password; ``succeeded()`` after a good one."""

    def __init__(self, settings: Settings, engine: Callable[[], Engine]) -> None:
        self.window = settings.login_window_seconds
        self.limits = (settings.login_attempts_per_address, settings.login_attempts_per_account)
        self.redis_url = settings.redis_url
        self.prefix = f"{settings.queue_prefix}:login:"
        self.engine = engine

    def attempt(self, address: str, account: str) -> int | None:
        """Take a slot: None if this attempt may go on, else seconds until one may."""
        keys = throttle_keys(address, account)
        if self.redis_url:
            try:
                return self._attempt_redis(keys)
            except redis.RedisError:
                log.warning("login throttle: Redis unreachable, counting in the database")
        return self._attempt_database(keys)

    def succeeded(self, address: str, account: str) -> None:
        keys = throttle_keys(address, account)
        if self.redis_url:
            try:
                self._client().eval(RELEASE_SCRIPT, 2, *(self.prefix + k for k in keys))
            except redis.RedisError:
                log.warning("login throttle: Redis unreachable; slot kept until the window ends")
        with self.engine().begin() as conn:  # the database counts too (after an outage)
            conn.execute(
                update(LoginCounter)
                .where(LoginCounter.key.in_(keys), LoginCounter.count > 0)
                .values(count=LoginCounter.count - 1)
            )

    # --- Redis ------------------------------------------------------------------------

    def _client(self) -> redis.Redis:
        from orders.infra.redis_pool import redis_pool

        assert self.redis_url
        return redis.Redis(connection_pool=redis_pool(self.redis_url))

    def _attempt_redis(self, keys: tuple[str, str]) -> int | None:
        names = [self.prefix + key for key in keys]
        which, ttl = self._client().eval(ATTEMPT_SCRIPT, 2, *names, self.window, *self.limits)
        return None if int(which) == 0 else max(1, int(ttl))

    # --- the database -------------------------------------------------------------------

    def _attempt_database(self, keys: tuple[str, str]) -> int | None:
        now = utcnow()
        window = timedelta(seconds=self.window)
        engine = self.engine()
        for key, limit in zip(keys, self.limits, strict=True):
            with engine.begin() as conn:
                count, started = _count_attempt(conn, key, now, window)
            if count > limit:
                left = math.ceil((started + window - now).total_seconds())
                return min(max(1, left), self.window)  # another attempt may have started it
        return None


def _count_attempt(
    conn: Connection, key: str, now: datetime, window: timedelta
) -> tuple[int, datetime]:
    """One atomic upsert: a new window if the key's has passed, else one more attempt."""
    table = LOGIN_COUNTERS
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    new = insert(table).values(key=key, window_start=now, count=1)
    expired = table.c.window_start <= now - window
    stmt = new.on_conflict_do_update(
        index_elements=["key"],
        set_={
            "count": case((expired, 1), else_=table.c.count + 1),
            "window_start": case((expired, new.excluded.window_start), else_=table.c.window_start),
        },
    ).returning(table.c.count, table.c.window_start)
    row = conn.execute(stmt).one()
    return int(row[0]), row[1]
