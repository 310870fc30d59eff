"""The one Redis connection pool per URL and process (broker, pub/sub, limits, breaker)."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # redis is imported where it is used
    from redis import ConnectionPool


@functools.cache
def redis_pool(url: str, max_connections: int = 200) -> ConnectionPool:
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


def _sentinel_pool(url: str, max_connections: int) -> ConnectionPool:
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
