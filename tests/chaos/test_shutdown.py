"""Graceful shutdown: SIGTERM lets a running step finish; a step cut short is re-driven."""

from __future__ import annotations

import signal

import pytest

from tests.chaos.audit import (
    assert_balanced,
    job_status,
    sku,
    timeline,
    wait_no_live_jobs,
    wait_until,
)

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.e2e,
    pytest.mark.xdist_group("chaos"),
    pytest.mark.postgres,
    pytest.mark.redis,
]


def payment_attempts(shop, public_id: str) -> int:
    return shop.scalar(
        "SELECT j.attempts FROM jobs j JOIN checkouts c ON c.id = j.checkout_id "
        "WHERE c.public_id = :p AND j.type = 'process-payment'",
        p=public_id,
    )


def test_sigterm_lets_the_running_payment_finish(make_stack):
    shop = make_stack(SIM_GATEWAY_LATENCY_MS="2500").up()
    item = sku()
    shop.add_product(item, stock=5, price_cents=2100)
    job = shop.checkout(item)
    wait_until(lambda: job_status(shop, job, "process-payment") == "active", 30, "the charge")
    shop.stop("payments", signal.SIGTERM)  # returns once the consumer has exited
    assert job_status(shop, job, "process-payment") == "completed"
    assert payment_attempts(shop, job) == 1
    assert shop.gateway.ledger()["captures"] == 1
    final = shop.wait_final([job])[job]  # the orders consumer carries on
    assert final["status"] == "completed", final
    assert not any("re-driven" in message for message in timeline(shop, job))
    shop.start("payments")
    wait_no_live_jobs(shop)
    assert_balanced(shop)


def test_a_step_cut_short_by_the_shutdown_timeout_is_re_driven_once(make_stack):
    shop = make_stack(
        SIM_GATEWAY_LATENCY_MS="3000", LEASE_SECONDS="8", WORKER_SHUTDOWN_SECONDS="1"
    ).up()
    item = sku()
    shop.add_product(item, stock=5, price_cents=3100)
    job = shop.checkout(item)
    wait_until(lambda: job_status(shop, job, "process-payment") == "active", 30, "the charge")
    shop.stop("payments", signal.SIGTERM)  # the step cannot finish within 1 s
    assert job_status(shop, job, "process-payment") == "active"  # its lease will expire
    assert shop.gateway.ledger()["captures"] == 0
    shop.start("payments")
    final = shop.wait_final([job], timeout=90)[job]
    assert final["status"] == "completed", final
    assert "process-payment re-driven after lease expiry, attempt 2/5" in timeline(shop, job)
    ledger = shop.gateway.ledger()
    assert ledger["captures"] == 1 and ledger["captured_cents"] == 3100
    wait_no_live_jobs(shop)
    assert_balanced(shop)
