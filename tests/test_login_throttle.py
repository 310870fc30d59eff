"""The login throttle: atomic counts per address and per account, on the database and
on Redis, shared by every process, and still counting when Redis is down."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest
from sqlalchemy import Engine, create_engine

from orders.config import Settings
from orders.db import configure_sqlite
from orders.environ import database_url_for_sqlalchemy
from orders.ops.login_throttle import LoginThrottle
from tests.conftest import REDIS_URL
from tests.stack import free_port

BACKENDS = ["database", pytest.param("redis", marks=pytest.mark.redis)]


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = configure_sqlite(create_engine(database_url_for_sqlalchemy(settings.database_url)))
    yield engine
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def make_throttle(
    request: pytest.FixtureRequest, settings: Settings, engine: Engine
) -> Iterator[Callable[[], LoginThrottle]]:
    """A factory: each call is another process's throttle over the same store."""
    redis_url = REDIS_URL if request.param == "redis" else None
    prefix = f"t{uuid.uuid4().hex[:10]}"
    shared = replace(settings, redis_url=redis_url, queue_prefix=prefix)
    yield lambda: LoginThrottle(shared, lambda: engine)
    if redis_url:
        import redis

        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(f"{prefix}:*"))
        if keys:
            client.delete(*keys)
        client.close()


def concurrently(attempt: Callable[[int], int | None], count: int) -> list[int | None]:
    """Run ``count`` attempts at once (released together by a barrier)."""
    barrier = threading.Barrier(count)
    results: list[int | None] = [None] * count
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = attempt(index)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    return results


def test_concurrent_attempts_from_one_address_never_slip_past(make_throttle):
    throttles = [make_throttle() for _ in range(4)]  # four "web workers"
    results = concurrently(lambda i: throttles[i % 4].attempt("10.0.0.1", f"user{i}"), 24)
    assert results.count(None) == 5  # LOGIN_ATTEMPTS_PER_ADDRESS
    assert all(wait is None or 1 <= wait <= 300 for wait in results)


def test_concurrent_attempts_on_one_account_never_slip_past(make_throttle):
    throttles = [make_throttle() for _ in range(4)]
    results = concurrently(lambda i: throttles[i % 4].attempt(f"10.0.1.{i}", "alice"), 24)
    assert results.count(None) == 10  # LOGIN_ATTEMPTS_PER_ACCOUNT, from 24 addresses


def test_an_address_over_its_limit_does_not_lock_the_account(make_throttle):
    throttle = make_throttle()
    for _ in range(5):
        assert throttle.attempt("10.0.2.1", "alice") is None
    for _ in range(20):  # refused at the address: the account is not counted
        assert throttle.attempt("10.0.2.1", "alice") is not None
    for number in range(5):
        assert throttle.attempt(f"10.0.2.{number + 2}", "alice") is None


def test_a_successful_login_gives_its_slot_back(make_throttle):
    throttle = make_throttle()
    for _ in range(20):
        assert throttle.attempt("10.0.3.1", "alice") is None
        throttle.succeeded("10.0.3.1", "alice")
    for _ in range(5):
        assert throttle.attempt("10.0.3.1", "alice") is None
    assert throttle.attempt("10.0.3.1", "alice") is not None


def test_a_new_window_starts_after_the_old_one(settings, engine):
    throttle = LoginThrottle(replace(settings, login_window_seconds=1), lambda: engine)
    for _ in range(5):
        assert throttle.attempt("10.0.4.1", "alice") is None
    assert throttle.attempt("10.0.4.1", "alice") == 1
    from sqlalchemy import text

    with engine.begin() as conn:  # the window began over a second ago
        conn.execute(text("UPDATE login_counters SET window_start = '2000-01-01 00:00:00'"))
    assert throttle.attempt("10.0.4.1", "alice") is None


def test_with_redis_unreachable_the_database_counts(settings, engine):
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    throttles = [LoginThrottle(replace(settings, redis_url=dead), lambda: engine) for _ in range(3)]
    results = concurrently(lambda i: throttles[i % 3].attempt("10.0.5.1", "alice"), 15)
    assert results.count(None) == 5
    throttles[0].succeeded("10.0.5.1", "alice")  # no error either
    assert throttles[1].attempt("10.0.5.1", "alice") is not None  # refused ones count too
