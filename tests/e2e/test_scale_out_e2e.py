"""Two consumers per queue against one Redis and one PostgreSQL, under load, audited.

The claim on the job row (a conditional UPDATE with a lease) is what keeps two
consumers from running one step twice; this test shows it holds with real processes:
no double charge, no oversell, every checkout final, the ledger balanced.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import POSTGRES_URL
from tests.e2e.conftest import require_redis
from tests.stack import Stack, postgres_database

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.xdist_group("deploy"),
]

CHECKOUTS = 240
SKUS = 4
STOCK_PER_SKU = 45  # 180 units for 240 one-unit checkouts: the rest must be out_of_stock
CONSUMERS = ("orders", "payments", "notifications")


@pytest.fixture
def scaled_stack(tmp_path):
    assert POSTGRES_URL
    with postgres_database(POSTGRES_URL) as url:
        stack = Stack(
            tmp_path,
            url,
            require_redis(),
            LEASE_SECONDS="30",  # a step here takes milliseconds: any re-run is a bug
            # small batches, so both consumers of a queue claim batches side by side (at
            # 50 one consumer's message can take a queue's whole backlog)
            PIPELINE_BATCH="4",
            WEB_CONCURRENCY="2",
        )
        try:
            stack.release()
            for name in ("web", "scheduler", *CONSUMERS):
                stack.start(name)
            for name in CONSUMERS:
                stack.start(name, instance=f"{name}-2")
            stack.wait_http()
            yield stack
        finally:
            stack.close()


def test_two_consumers_per_queue_under_load_never_double_apply(scaled_stack):
    stack = scaled_stack
    skus = [f"SCALE-{uuid.uuid4().hex[:8]}" for _ in range(SKUS)]
    for item in skus:
        stack.add_product(item, stock=STOCK_PER_SKU, price_cents=700)
    tokens = ["tok_visa"] * 8 + ["tok_flaky", "tok_declined"]
    plan = [(skus[i % SKUS], tokens[i % len(tokens)]) for i in range(CHECKOUTS)]

    def place(item: tuple[str, str]) -> str | None:
        """The checkout's id; None if refused at the door because the SKU sold out
        meanwhile (the pipeline can outrun the 240 requests)."""
        response = stack.post_checkout(item[0], 1, token=item[1])
        if response.status_code == 422 and "out of stock" in response.text:
            return None
        assert response.status_code == 202, response.text
        return str(response.json()["data"]["jobId"])

    with ThreadPoolExecutor(8) as pool:
        placed = list(pool.map(place, plan))
    jobs = [job for job in placed if job is not None]
    token_of = {job: token for job, (_, token) in zip(placed, plan, strict=True) if job}

    final = stack.wait_final(jobs, timeout=240)

    # every checkout final, with an outcome its card allows; every one accounted for
    outcomes = Counter(body.get("code", body["status"]) for body in final.values())
    assert set(outcomes) <= {"completed", "out_of_stock", "payment_declined"}, outcomes
    assert sum(outcomes.values()) + placed.count(None) == CHECKOUTS
    for job_id, body in final.items():
        if token_of[job_id] == "tok_declined":
            assert body.get("code") in ("payment_declined", "out_of_stock"), body
    completed = outcomes["completed"]
    sold_units = STOCK_PER_SKU * SKUS
    assert completed <= sold_units

    # no oversell, stock accounted for: what is left + what was sold = what there was
    for item in skus:
        stock, sold = (
            stack.scalar("SELECT stock FROM products WHERE sku = :s", s=item),
            stack.scalar("SELECT sold FROM products WHERE sku = :s", s=item),
        )
        assert stock >= 0 and stock + sold == STOCK_PER_SKU, (item, stock, sold)
    total_sold = stack.scalar(
        "SELECT COALESCE(SUM(ol.quantity), 0) FROM order_lines ol "
        "JOIN orders o ON o.id = ol.order_id"
    )
    assert total_sold == completed
    assert (
        stack.scalar(
            "SELECT COALESCE(SUM(stock), 0) FROM products WHERE sku IN "
            f"({','.join(repr(s) for s in skus)})"
        )
        == sold_units - completed
    )

    # no double charge: one order and one captured payment per completed checkout
    assert stack.scalar("SELECT COUNT(*) FROM orders") == completed
    assert stack.scalar("SELECT COUNT(*) FROM payments WHERE status = 'captured'") == completed
    assert (
        stack.scalar(
            "SELECT COUNT(*) FROM (SELECT checkout_id FROM payments WHERE status = 'captured' "
            "GROUP BY checkout_id HAVING COUNT(*) > 1) AS doubled"
        )
        == 0
    )
    assert (
        stack.scalar("SELECT COUNT(*) FROM emails e JOIN orders o ON o.checkout_id = e.checkout_id")
        == completed
    )

    # the gateway's own ledger: each tok_visa charge was asked for exactly once (a step
    # run twice would ask twice), captures = our captures, money in = orders' totals
    ledger = sqlite3.connect(stack.data_dir / "gateway.db")
    try:
        visa_attempts = [
            n
            for (n,) in ledger.execute(
                "SELECT a.count FROM attempts a JOIN charges c USING (idempotency_key) "
                "WHERE c.token = 'tok_visa'"
            )
        ]
        captured, captured_cents = ledger.execute(
            "SELECT COUNT(*), COALESCE(SUM(amount_cents), 0) FROM charges WHERE status = 'captured'"
        ).fetchone()
        refunded_cents = ledger.execute(
            "SELECT COALESCE(SUM(amount_cents), 0) FROM refunds"
        ).fetchone()[0]
    finally:
        ledger.close()
    assert visa_attempts and set(visa_attempts) == {1}
    order_cents = stack.scalar("SELECT COALESCE(SUM(total_cents), 0) FROM orders")
    assert (captured, refunded_cents) == (completed, 0)  # nothing failed after capture
    assert captured_cents == order_cents

    # and both consumers of each queue did part of the work
    for queue in CONSUMERS:
        workers = stack.scalar(
            "SELECT COUNT(DISTINCT worker) FROM jobs WHERE queue = :q AND status = 'completed'",
            q=queue,
        )
        assert workers == 2, (queue, workers)
    # the sweeper ran on the one scheduler only
    for name in CONSUMERS:
        for log_name in (name, f"{name}-2"):
            assert "sweeper running" not in (stack.data_dir / f"{log_name}.log").read_text()
    assert "sweeper running" in (stack.data_dir / "scheduler.log").read_text()
