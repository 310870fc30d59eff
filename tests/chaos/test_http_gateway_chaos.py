"""The whole pipeline against the simulated gateway over real HTTP, and a worker killed
while the gateway is still working on its charge (the capture happens anyway)."""

from __future__ import annotations

import time

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


def test_the_pipeline_over_a_real_http_gateway(make_stack, http_gateway):
    shop = make_stack()
    shop.env["GATEWAY_URL"] = http_gateway(shop.data_dir / "gateway.db")
    shop.up()
    item = sku()
    shop.add_product(item, stock=10, price_cents=1500)
    ok = [shop.checkout(item) for _ in range(3)]
    declined = shop.checkout(item, token="tok_declined")
    final = shop.wait_final([*ok, declined])
    assert {final[job]["status"] for job in ok} == {"completed"}
    assert final[declined]["code"] == "payment_declined"
    ledger = shop.gateway.ledger()
    assert ledger["captures"] == 3 and ledger["declines"] == 1
    wait_no_live_jobs(shop)
    assert_balanced(shop)


def test_sigkill_while_the_http_gateway_captures_charges_once(make_stack, http_gateway):
    shop = make_stack()
    shop.env["GATEWAY_URL"] = http_gateway(shop.data_dir / "gateway.db", "2000")
    shop.up()
    item = sku()
    shop.add_product(item, stock=5, price_cents=2600)
    job = shop.checkout(item)
    wait_until(lambda: job_status(shop, job, "process-payment") == "active", 30, "the charge")
    time.sleep(0.8)  # let the request reach the gateway (it answers after 2 s)
    shop.kill("payments")  # the request is on the wire: the gateway captures regardless
    wait_until(lambda: shop.gateway.ledger()["captures"] == 1, 30, "the orphan capture")
    shop.start("payments")
    final = shop.wait_final([job], timeout=60)[job]
    assert final["status"] == "completed", final
    assert "process-payment re-driven after lease expiry, attempt 2/5" in timeline(shop, job)
    ledger = shop.gateway.ledger()
    assert ledger["captures"] == 1 and ledger["captured_cents"] == 2600  # replayed, not re-charged
    wait_no_live_jobs(shop)
    assert_balanced(shop)
