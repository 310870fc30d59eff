"""Draining a consumer with SIGTERM: its running steps finish, the queue waits for others.

The runbook's "Drain a worker" (docs/operations.md) and the autoscaler's scale-down
rely on this: consumers run with ``-g TERM -t 30``, so SIGTERM lets in-flight steps
complete (no lease expiry, no re-drive), the consumer exits cleanly, and messages
still queued stay in Redis for the next consumer.
"""

from __future__ import annotations

import time
import uuid

import pytest
from huey import PriorityRedisExpireHuey
from sqlalchemy import text

from tests.conftest import POSTGRES_URL
from tests.e2e.conftest import require_redis
from tests.stack import Stack, postgres_database

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.xdist_group("deploy"),
]


@pytest.fixture
def slow_payments_stack(tmp_path):
    assert POSTGRES_URL
    with postgres_database(POSTGRES_URL) as url:
        stack = Stack(
            tmp_path,
            url,
            require_redis(),
            SIM_GATEWAY_LATENCY_MS="2000",  # each charge takes 2 s: SIGTERM lands mid-step
            PAYMENTS_CONCURRENCY="2",
            # jobs one at a time: a batch's next jobs leave in one message, and a
            # message's own jobs all run, so two charges at once holds only unbatched
            PIPELINE_BATCH="1",
            LEASE_SECONDS="30",
        )
        try:
            yield stack.up()
        finally:
            stack.close()


def active_payments(stack: Stack) -> list[str]:
    with stack.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT id FROM jobs WHERE queue = 'payments' AND status = 'active'")
        )
        return [row[0] for row in rows]


def test_sigterm_lets_running_steps_finish_and_leaves_the_rest_queued(slow_payments_stack):
    stack = slow_payments_stack
    item = f"DRAIN-{uuid.uuid4().hex[:8]}"
    stack.add_product(item, stock=20)
    jobs = [stack.checkout(item) for _ in range(6)]

    deadline = time.monotonic() + 30
    while not (running := active_payments(stack)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert running, "no payment step started"
    process = stack.processes["payments"]
    stack.stop("payments")  # SIGTERM to the consumer, waits for it to exit
    assert process.returncode == 0, stack.log("payments")

    # the steps that were running when SIGTERM arrived finished on that consumer
    for job_id in running:
        status, attempts = stack.scalar(
            "SELECT status || ':' || attempts FROM jobs WHERE id = :j", j=job_id
        ).split(":")
        assert (status, attempts) == ("completed", "1"), job_id
    # nothing is left half-done: every payment job is finished or still waiting
    assert active_payments(stack) == []
    waiting = stack.scalar(
        "SELECT COUNT(*) FROM jobs WHERE queue = 'payments' AND status = 'queued'"
    )
    assert waiting > 0  # six 2-second charges on two threads cannot all have run
    broker = PriorityRedisExpireHuey(f"{stack.prefix}-payments", url=stack.redis_url)
    assert broker.pending_count() >= 1  # their messages wait in Redis for the next consumer
    broker.storage.conn.close()

    stack.start("payments")  # the next consumer takes what was queued
    final = stack.wait_final(jobs, timeout=90)
    assert {body["status"] for body in final.values()} == {"completed"}
    assert (
        stack.scalar("SELECT MAX(attempts) FROM jobs WHERE type = 'process-payment'") == 1
    )  # no step was cut off and re-driven
