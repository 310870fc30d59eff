"""Chaos against real processes: SIGKILL workers, lose the broker, race buyers.

Every test ends with the same audit: each checkout ``completed`` or ``failed`` with a
code, no job left waiting or running, the gateway's ledger equal to our orders.
"""

from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.chaos.audit import (
    assert_balanced,
    assert_stock,
    job_status,
    sku,
    timeline,
    wait_no_live_jobs,
    wait_until,
)
from tests.stack import WORKERS

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.e2e,
    pytest.mark.xdist_group("chaos"),
    pytest.mark.postgres,
    pytest.mark.redis,
]


def test_sigkill_payments_consumer_mid_charge_charges_once(make_stack):
    shop = make_stack(SIM_GATEWAY_LATENCY_MS="2500").up()
    item = sku()
    shop.add_product(item, stock=5, price_cents=1234)
    job = shop.checkout(item)
    wait_until(lambda: job_status(shop, job, "process-payment") == "active", 30, "the charge")
    shop.kill("payments")
    assert shop.status(job)["status"] == "processing"
    shop.start("payments")
    final = shop.wait_final([job], timeout=60)[job]
    assert final["status"] == "completed", final
    ledger = shop.gateway.ledger()
    assert ledger["captures"] == 1 and ledger["captured_cents"] == 1234, ledger
    assert "process-payment re-driven after lease expiry, attempt 2/5" in timeline(shop, job)
    wait_no_live_jobs(shop)
    assert_balanced(shop)


@pytest.mark.parametrize("victim", WORKERS)
def test_sigkill_each_worker_kind_with_orders_in_flight(make_stack, victim):
    shop = make_stack(SIM_GATEWAY_LATENCY_MS="100-400", SIM_STEP_LATENCY_MS="100-300").up()
    item = sku()
    shop.add_product(item, stock=14, price_cents=700)
    tokens = ["tok_visa", "tok_visa", "tok_declined", "tok_flaky", "tok_visa"]
    placed = {shop.checkout(item, 1, token=tokens[i % 5]): tokens[i % 5] for i in range(20)}
    rng = random.Random(victim)
    for _ in range(4):  # kill it at whatever step each order happens to be in
        time.sleep(rng.uniform(0.3, 1.2))
        shop.kill(victim)
        time.sleep(rng.uniform(0.1, 0.5))
        shop.start(victim)
    final = shop.wait_final(list(placed), timeout=150)
    for job, body in final.items():
        outcome = body.get("code", body["status"])
        if placed[job] == "tok_declined":
            assert outcome in ("payment_declined", "out_of_stock"), body
        else:
            assert outcome in ("completed", "out_of_stock"), body
    outcomes = [body.get("code", body["status"]) for body in final.values()]
    assert 0 < outcomes.count("completed") <= 14
    wait_no_live_jobs(shop, timeout=90)
    assert_balanced(shop)
    assert_stock(shop, item, 14)


def test_sigkill_a_consumer_with_hundreds_of_jobs_in_flight(make_stack):
    """One payments consumer takes hundreds of charges at once (in batches, each
    charge waiting on the gateway on a caller of its own); SIGKILL loses all their
    messages at a stroke. Leases and the sweeper re-drive every one: none lost, none
    charged twice."""
    from huey import PriorityRedisExpireHuey

    # no re-sends of waiting jobs meanwhile (REQUEUE_AFTER): each charge sent once
    shop = make_stack(
        SIM_GATEWAY_LATENCY_MS="5000", LEASE_SECONDS="20", REQUEUE_AFTER_SECONDS="60"
    ).up()
    broker = PriorityRedisExpireHuey(f"{shop.prefix}-payments", url=shop.redis_url)
    item = sku()
    shop.add_product(item, stock=400, price_cents=100)
    shop.stop("payments")  # the charges wait in the queue, then go in together
    with ThreadPoolExecutor(max_workers=8) as pool:
        jobs = list(pool.map(lambda _: shop.checkout(item), range(300)))
    payments = "SELECT COUNT(*) FROM jobs WHERE type = 'process-payment'"
    sent = f"{payments} AND enqueued_at IS NOT NULL"
    wait_until(lambda: shop.scalar(sent) == 300, 240, "300 charges queued and sent")
    assert broker.pending_count() > 0  # in messages of up to PIPELINE_BATCH charges
    shop.start("payments")
    wait_until(lambda: broker.pending_count() == 0, 60, "one consumer to take them all")
    # its runners claim them as database connections free up: kill it with many claimed
    in_flight = f"{payments} AND status = 'active'"
    wait_until(lambda: shop.scalar(in_flight) >= 20, 60, "charges claimed in flight")
    # a charge takes 5 s: most of the 300 are still in that one process
    assert shop.scalar(f"{payments} AND status = 'completed'") < 100
    shop.kill("payments")
    shop.start("payments")
    final = shop.wait_final(jobs, timeout=240)
    assert {body["status"] for body in final.values()} == {"completed"}
    ledger = shop.gateway.ledger()
    assert ledger["captures"] == 300 and ledger["captured_cents"] == 300 * 100, ledger
    assert shop.scalar(f"{payments} AND attempts >= 2") > 0  # the killed ones, re-driven
    wait_no_live_jobs(shop, timeout=120)
    assert_balanced(shop)
    assert_stock(shop, item, 400)
    broker.storage.conn.close()


def test_broker_outage_then_an_empty_redis(private_redis, make_stack):
    shop = make_stack(redis_url=private_redis.url).up()
    item = sku()
    shop.add_product(item, stock=20, price_cents=500)
    warm = shop.checkout(item)
    shop.wait_final([warm])
    private_redis.stop()
    jobs = [shop.checkout(item) for _ in range(6)]  # asserts 202 for each
    assert all(shop.status(job)["status"] == "queued" for job in jobs)
    private_redis.start()  # persistence is off: the broker comes back empty
    final = shop.wait_final(jobs, timeout=90)
    assert {body["status"] for body in final.values()} == {"completed"}
    wait_no_live_jobs(shop)
    assert_balanced(shop)
    assert_stock(shop, item, 20)


def test_fifty_buyers_for_the_last_five_units(make_stack):
    shop = make_stack().up()
    item = sku()
    shop.add_product(item, stock=5, price_cents=999)
    shop.stop("orders")  # every buyer gets in while the shelf still shows 5

    def buy(n: int) -> str:
        return shop.checkout(item, 1, **{"Idempotency-Key": f"{item}-{n}"})

    with ThreadPoolExecutor(max_workers=50) as pool:
        jobs = list(pool.map(buy, range(50)))
    shop.start("orders")
    final = shop.wait_final(jobs, timeout=120)
    codes = [body.get("code", body["status"]) for body in final.values()]
    assert codes.count("completed") == 5
    assert codes.count("out_of_stock") == 45
    assert shop.scalar("SELECT stock FROM products WHERE sku = :s", s=item) == 0
    assert shop.scalar("SELECT COUNT(*) FROM payments") == 5
    ledger = shop.gateway.ledger()
    assert ledger["captures"] == 5 and ledger["captured_cents"] == 5 * 999
    wait_no_live_jobs(shop)
    assert_balanced(shop)
    assert_stock(shop, item, 5)


def test_same_idempotency_key_twenty_times_at_once(make_stack):
    shop = make_stack().up()
    item = sku()
    shop.add_product(item, stock=50, price_cents=4200)
    body = {
        "email": "dup@example.com",
        "items": [{"sku": item, "quantity": 1}],
        "paymentToken": "tok_visa",
    }

    def fire(_: int) -> requests.Response:
        return requests.post(
            f"{shop.base_url}/api/checkout",
            json=body,
            headers={"Idempotency-Key": f"dup-{item}"},
            timeout=30,
        )

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(fire, range(20)))
    # the duplicates wait for the first on the key's unique index, then replay it
    assert [r.status_code for r in responses] == [202] * 20, [r.text for r in responses]
    ids = {r.json()["data"]["jobId"] for r in responses}
    assert len(ids) == 1
    job = ids.pop()
    assert shop.wait_final([job])[job]["status"] == "completed"
    assert shop.scalar("SELECT COUNT(*) FROM checkouts") == 1
    ledger = shop.gateway.ledger()
    assert ledger["captures"] == 1 and ledger["captured_cents"] == 4200
    wait_no_live_jobs(shop)
    assert_balanced(shop)


def test_gateway_outage_opens_the_breaker_steps_wait_then_complete(make_stack):
    import redis

    from orders.infra.breaker import breaker_state_key

    shop = make_stack(BREAKER_FAIL_MAX="3", BREAKER_RESET_SECONDS="2", MAX_ATTEMPTS="8").up()
    state_key = breaker_state_key(shop.prefix)
    client = redis.Redis.from_url(shop.redis_url)
    item = sku()
    shop.add_product(item, stock=10, price_cents=300)
    shop.gateway.set_outage(True)
    jobs = [shop.checkout(item) for _ in range(6)]
    wait_until(lambda: client.get(state_key) == b"open", 60, "the breaker to open")
    waiting = "Payment gateway unavailable (circuit open)"
    wait_until(
        lambda: all(any(waiting in m for m in timeline(shop, job)) for job in jobs),
        60,
        "every payment step to wait on the open breaker",
    )
    assert {shop.status(job)["status"] for job in jobs} == {"processing"}
    assert shop.gateway.ledger()["captures"] == 0
    shop.gateway.set_outage(False)
    final = shop.wait_final(jobs, timeout=90)
    assert {body["status"] for body in final.values()} == {"completed"}
    assert client.get(state_key) == b"closed"
    payments_log = (shop.data_dir / "payments.log").read_text(errors="replace")
    assert "payment gateway circuit: open -> half-open" in payments_log
    client.close()
    wait_no_live_jobs(shop)
    assert_balanced(shop)
