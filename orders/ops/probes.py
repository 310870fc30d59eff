"""Is the broker reachable? (Redis ping, or the SqliteHuey files can be opened.)"""

from __future__ import annotations

import sqlite3

from orders.config import Settings
from orders.pipeline.jobtypes import QUEUES


def broker_reachable(settings: Settings) -> str | None:
    """None when reachable, else why not."""
    try:
        if settings.redis_url:
            import redis

            from orders.infra.redis_pool import redis_pool

            # the one pool factory: a Sentinel URL asks the sentinels for the master, and
            # the password in the URL reaches it (redis.Redis.from_url refused Sentinel)
            redis.Redis(connection_pool=redis_pool(settings.redis_url)).ping()
            return None
        for queue in QUEUES:
            path = settings.data_dir.resolve() / f"huey-{queue}.db"
            connection = sqlite3.connect(path, timeout=2)
            try:
                connection.execute("SELECT 1")
            finally:
                connection.close()
        return None
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
