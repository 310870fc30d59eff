"""The scaling rule, the decision records, and the supervisor on real child processes."""

from __future__ import annotations

import sys
from dataclasses import replace

import pytest

from orders.autoscale import Supervisor
from orders.db import make_engine, make_session_factory
from orders.domain.scaling import recommend_workers
from orders.ops.scaling import recent_scaling_decisions


@pytest.mark.parametrize(
    ("depth", "current", "expected"),
    [
        (101, 1, 3),  # > 100: +2
        (100, 2, 2),  # at the threshold: hold
        (500, 3, 4),  # +2 capped at the maximum
        (50, 3, 3),  # between the thresholds: hold
        (10, 3, 3),  # at the lower threshold: hold
        (9, 3, 2),  # < 10: -1
        (0, 1, 1),  # never below the minimum
        (0, 7, 4),  # above the maximum (config lowered): back within bounds
    ],
)
def test_the_seed_rule(depth, current, expected):
    assert recommend_workers(depth, current, 1, 4) == expected


def test_thresholds_are_parameters():
    assert recommend_workers(7, 1, 1, 3, up_at=6, down_at=2) == 3
    assert recommend_workers(1, 3, 1, 3, up_at=6, down_at=2) == 2


@pytest.fixture
def supervisor(settings, request):
    depths = {"orders": 0, "payments": 0}
    engine = make_engine(settings)
    sup = Supervisor(
        settings=replace(
            settings, autoscale_min=1, autoscale_max=3, autoscale_up_depth=6, autoscale_down_depth=2
        ),
        queues=["orders", "payments"],
        depth_of=depths.__getitem__,
        sessions=make_session_factory(engine),
        command=lambda queue: [sys.executable, "-c", "import time; time.sleep(120)"],
        host="test-host",
    )
    sup.depths = depths  # type: ignore[attr-defined]
    yield sup
    sup.shutdown(timeout=10)
    engine.dispose()


def test_supervisor_scales_records_and_replaces(supervisor, session):
    supervisor.start()
    assert supervisor.counts() == {"orders": 1, "payments": 1}

    supervisor.depths["orders"] = 50
    supervisor.tick()
    assert supervisor.counts() == {"orders": 3, "payments": 1}

    # a consumer that dies is replaced (no decision: the target did not change)
    supervisor.running["orders"][0].kill()
    supervisor.running["orders"][0].wait(10)
    supervisor.tick()
    assert supervisor.counts()["orders"] == 3

    supervisor.depths["orders"] = 0
    supervisor.tick()
    assert supervisor.counts()["orders"] == 2
    stopped = supervisor.stopping[-1]
    assert stopped.wait(10) == -15  # SIGTERM, the consumers' graceful stop

    rows = recent_scaling_decisions(session, limit=10)
    assert [(r.queue, r.depth, r.workers_before, r.workers_after) for r in rows] == [
        ("orders", 0, 3, 2),
        ("orders", 50, 1, 3),
    ]
    assert rows[1].reason == "depth 50 > 6: scale up" and rows[0].host == "test-host"
    assert len(recent_scaling_decisions(session, limit=1)) == 1


def test_supervisor_keeps_its_consumers_when_the_broker_is_away(supervisor):
    supervisor.start()

    def broken(queue: str) -> int:
        raise ConnectionError("redis down")

    supervisor.depth_of = broken
    supervisor.tick()
    assert supervisor.counts() == {"orders": 1, "payments": 1}
