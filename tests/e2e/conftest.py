"""Fixtures that run the real processes (gunicorn + huey_consumer) per test module."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from tests.conftest import POSTGRES_URL, REDIS_URL
from tests.stack import Stack, postgres_database

STACKS = [
    "sqlite",
    pytest.param("postgres-redis", marks=[pytest.mark.postgres, pytest.mark.redis]),
]


def require_redis() -> str:
    import redis

    assert REDIS_URL
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except Exception as exc:  # enabled but unreachable: fail, never skip
        pytest.fail(f"TEST_REDIS_URL is set but Redis is unreachable: {exc}")
    return REDIS_URL


def open_stack(kind: str, tmp_path_factory: pytest.TempPathFactory, exits: ExitStack, **env: str):
    data_dir = tmp_path_factory.mktemp(f"stack-{kind}")
    if kind == "sqlite":
        return Stack(data_dir, f"sqlite:///{data_dir}/shop.db", None, **env)
    assert POSTGRES_URL
    url = exits.enter_context(postgres_database(POSTGRES_URL))
    return Stack(data_dir, url, require_redis(), **env)


@pytest.fixture(scope="module", params=STACKS)
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """The whole shop, every process up, on each backend."""
    with ExitStack() as exits:
        shop = open_stack(request.param, tmp_path_factory, exits)
        exits.callback(shop.close)
        yield shop.up()
