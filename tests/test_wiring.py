"""The Redis factory (plain and Sentinel) and the JSON log format with checkout ids."""

from __future__ import annotations

import json
import logging

from redis import BlockingConnectionPool
from redis.sentinel import SentinelConnectionPool

from orders.infra.redis_pool import redis_pool
from orders.logcontext import ContextFilter, JsonFormatter, bind_checkout


def test_a_plain_url_gives_a_blocking_pool():
    pool = redis_pool("redis://127.0.0.1:6399/2")
    assert isinstance(pool, BlockingConnectionPool)
    assert pool is redis_pool("redis://127.0.0.1:6399/2")  # one per process


def test_a_sentinel_url_gives_a_master_pool_with_timeouts_over_a_second():
    pool = redis_pool(
        "redis+sentinel://:p%40ss@10.0.0.1:26379,10.0.0.2:26380/shop/3?sentinel_password=sp"
    )
    assert isinstance(pool, SentinelConnectionPool)
    assert pool.service_name == "shop" and pool.is_master
    assert pool.connection_kwargs["password"] == "p@ss"
    assert pool.connection_kwargs["db"] == 3
    assert pool.connection_kwargs["socket_timeout"] > 1  # Huey blocks 1 s on reads
    nodes = [s.connection_pool.connection_kwargs for s in pool.sentinel_manager.sentinels]
    assert [(n["host"], n["port"], n["password"]) for n in nodes] == [
        ("10.0.0.1", 26379, "sp"),
        ("10.0.0.2", 26380, "sp"),
    ]


def _record(message: str) -> logging.LogRecord:
    record = logging.LogRecord("orders.test", logging.INFO, __file__, 1, message, (), None)
    ContextFilter().filter(record)
    return record


def test_json_lines_carry_the_checkout_while_bound():
    formatter = JsonFormatter()
    with bind_checkout("chk123", "job9", "reserve-stock"):
        inside = json.loads(formatter.format(_record("holding stock")))
    outside = json.loads(formatter.format(_record("idle")))
    assert inside["checkout_id"] == "chk123" and inside["job_id"] == "job9"
    assert inside["job_type"] == "reserve-stock" and inside["message"] == "holding stock"
    assert inside["level"] == "INFO" and inside["logger"] == "orders.test"
    assert "checkout_id" not in outside and outside["message"] == "idle"
