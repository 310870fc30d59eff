"""The consumers' Huey classes run a task without a broker round trip about revocation,
and refuse to revoke (real Redis, and the embedded SQLite broker)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orders.infra.hueys import EmbeddedHuey, RedisHuey, RevokingRefused
from tests.conftest import REDIS_URL


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def huey(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    name = f"t{uuid.uuid4().hex[:8]}"
    if request.param == "sqlite":
        yield EmbeddedHuey(name, filename=str(tmp_path / "huey.db"), results=False)
        return
    import redis

    made = RedisHuey(name, connection_pool=redis.ConnectionPool.from_url(REDIS_URL), results=False)
    yield made
    made.flush()


def test_a_task_runs_without_reading_or_clearing_a_revocation(huey: Any, monkeypatch) -> None:
    ran: list[int] = []

    @huey.task()
    def work(n: int) -> None:
        ran.append(n)

    work(7)
    calls: list[str] = []
    for name in ("peek_many", "peek_data", "pop_data", "delete_data"):
        monkeypatch.setattr(huey.storage, name, lambda *_a, name=name: calls.append(name))
    huey.execute(huey.dequeue())
    assert ran == [7] and calls == []


def test_revoking_is_refused_not_silently_ignored(huey: Any) -> None:
    @huey.task()
    def work() -> None:
        pass

    with pytest.raises(RevokingRefused, match="discarded in its row"):
        huey.revoke_by_id("some-task")
    with pytest.raises(RevokingRefused):
        work.revoke()
    with pytest.raises(RevokingRefused):
        huey.revoke_all(work)
