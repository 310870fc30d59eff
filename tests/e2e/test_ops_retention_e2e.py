"""Retention on real processes: the scheduler's periodic task trims old job records."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from tests.e2e.conftest import open_stack
from tests.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("ops")]


@pytest.fixture(scope="module")
def small_stack(tmp_path_factory) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    with ExitStack() as exits:
        shop = open_stack(
            "sqlite",
            tmp_path_factory,
            exits,
            KEEP_COMPLETED_JOBS="2",
            KEEP_FAILED_JOBS="1",
            JOB_CLEANUP_INTERVAL="1000",
        )
        exits.callback(shop.close)
        yield shop.up()


def test_the_scheduler_keeps_only_the_configured_job_records(small_stack):
    item = f"RET-{uuid.uuid4().hex[:8]}"
    small_stack.add_product(item, stock=10)
    ids = [small_stack.checkout(item) for _ in range(3)]
    ids.append(small_stack.checkout(item, token="tok_declined"))
    small_stack.wait_final(ids)
    small_stack.wait_idle()  # the confirmation emails are counted too
    stats_before = small_stack.scalar("SELECT SUM(count) FROM job_stats_minutely")
    events_before = small_stack.scalar("SELECT COUNT(*) FROM checkout_events")

    def kept() -> int:
        """The most completed records any queue keeps: a pass that ran while the last
        emails were still on their way left the notifications queue one over."""
        return int(
            small_stack.scalar(
                "SELECT MAX(n) FROM (SELECT COUNT(*) AS n FROM jobs WHERE status = 'completed' "
                "GROUP BY queue) AS kept"
            )
        )

    deadline = time.monotonic() + 130  # the periodic task runs once a minute
    while kept() > 2 and time.monotonic() < deadline:
        time.sleep(1)
    assert kept() == 2, small_stack.log("scheduler")
    for queue in ("orders", "payments", "notifications"):
        for status, allowed in (("completed", 2), ("failed", 1)):
            count = small_stack.scalar(
                "SELECT COUNT(*) FROM jobs WHERE queue = :q AND status = :s", q=queue, s=status
            )
            assert count <= allowed, (queue, status, count)
    assert (
        small_stack.scalar(
            "SELECT COUNT(*) FROM jobs WHERE queue = 'payments' AND status = 'completed'"
        )
        == 2
    )
    assert small_stack.scalar("SELECT COUNT(*) FROM checkouts") == 4
    assert small_stack.scalar("SELECT COUNT(*) FROM orders") == 3
    assert small_stack.scalar("SELECT COUNT(*) FROM checkout_events") >= events_before
    assert small_stack.scalar("SELECT SUM(count) FROM job_stats_minutely") == stats_before
    assert "job retention: deleted" in small_stack.log("scheduler")
