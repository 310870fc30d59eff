"""The autoscaler runs real consumers and scales them with queue depth.

Small thresholds (``AUTOSCALE_UP_DEPTH=6``, ``AUTOSCALE_DOWN_DEPTH=2``) and slow steps
make a burst of checkouts pile up: the supervisor adds consumers, records the
decision, and once the queue drains it stops the surplus ones with SIGTERM.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from orders.ops.scaling import recent_scaling_decisions
from tests.conftest import POSTGRES_URL
from tests.e2e.conftest import require_redis
from tests.stack import Stack, postgres_database, proc_stat

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.xdist_group("deploy"),
]


def consumers(supervisor_pid: int, queue: str) -> int:
    """How many live huey_consumer children of the supervisor serve ``queue``."""
    children = Path(f"/proc/{supervisor_pid}/task/{supervisor_pid}/children").read_text().split()
    count = 0
    for pid in children:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except FileNotFoundError:
            continue
        fields = proc_stat(int(pid))
        if f"tasks.{queue}_queue".encode() in argv and fields is not None and fields[0] != "Z":
            count += 1
    return count


def wait_for(predicate, timeout: float, what: str, stack: Stack) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}\n{stack.log('autoscaler')}")


@pytest.fixture
def autoscaled_stack(tmp_path):
    assert POSTGRES_URL
    with postgres_database(POSTGRES_URL) as url:
        stack = Stack(
            tmp_path,
            url,
            require_redis(),
            AUTOSCALE_MIN="1",
            AUTOSCALE_MAX="3",
            AUTOSCALE_UP_DEPTH="6",
            AUTOSCALE_DOWN_DEPTH="2",
            AUTOSCALE_INTERVAL_SECONDS="0.5",
            ORDERS_CONCURRENCY="1",
            PAYMENTS_CONCURRENCY="1",
            NOTIFICATIONS_CONCURRENCY="1",
            SIM_STEP_LATENCY_MS="100-150",
        )
        try:
            yield stack.up("web", "scheduler", "autoscaler")
        finally:
            stack.close()


def decisions(stack: Stack, queue: str) -> list[tuple[int, int]]:
    with Session(stack.engine) as session:
        rows = recent_scaling_decisions(session, limit=100)
    return [(d.workers_before, d.workers_after) for d in reversed(rows) if d.queue == queue]


def test_a_burst_scales_consumers_up_and_they_scale_back_down(autoscaled_stack):
    stack = autoscaled_stack
    pid = stack.processes["autoscaler"].pid
    queues = ("orders", "payments", "notifications")  # started one after another
    wait_for(lambda: all(consumers(pid, q) == 1 for q in queues), 30, "one of each", stack)

    item = f"AUTO-{uuid.uuid4().hex[:8]}"
    stack.add_product(item, stock=200, price_cents=500)
    with ThreadPoolExecutor(8) as pool:
        jobs = list(pool.map(lambda _: stack.checkout(item), range(80)))

    wait_for(lambda: (1, 3) in decisions(stack, "orders"), 60, "a scale-up decision", stack)
    wait_for(lambda: consumers(pid, "orders") == 3, 30, "three orders consumers", stack)

    final = stack.wait_final(jobs, timeout=180)
    assert {body["status"] for body in final.values()} == {"completed"}

    wait_for(lambda: decisions(stack, "orders")[-1][1] == 1, 60, "scale-down to 1", stack)
    wait_for(lambda: consumers(pid, "orders") == 1, 60, "surplus consumers to exit", stack)
    history = decisions(stack, "orders")
    assert history[0] == (1, 3)
    assert all(after == before - 1 for before, after in history[1:] if after < before)
    log = (stack.data_dir / "autoscaler.log").read_text()
    assert "scale up" in log and "SIGTERM, graceful" in log
