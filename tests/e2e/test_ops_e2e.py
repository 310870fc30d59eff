"""The operator's side on real processes: health, heartbeats, metrics, pause, and the
dashboard in real Chromium (log in, search, timeline, retry a failed job, breaker)."""

from __future__ import annotations

import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import STACKS, open_stack
from tests.ops_support import CSRF
from tests.stack import Stack, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("ops")]
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module", params=STACKS)
def ops_stack(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    """A stack whose SMTP server is down at first (SMTP_URL points at a closed port)."""
    smtp_port = free_port()
    with ExitStack() as exits:
        shop = open_stack(
            request.param,
            tmp_path_factory,
            exits,
            SMTP_URL=f"smtp://127.0.0.1:{smtp_port}",
            MAX_ATTEMPTS="2",
            HEARTBEAT_SECONDS="1",
        )
        shop.smtp_port = smtp_port  # type: ignore[attr-defined]
        exits.callback(shop.close)
        yield shop.up()


def wait_for(what: str, check, timeout: float = 60) -> Any:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def ops_session(stack: Stack) -> requests.Session:
    http = requests.Session()
    page = http.get(f"{stack.base_url}/ops/login", timeout=10).text
    response = http.post(
        f"{stack.base_url}/ops/login",
        data={
            "username": "ops",
            "password": "ops-dev-password",
            "csrf_token": CSRF.search(page)[1],
        },
        timeout=10,
    )
    assert response.ok and "/ops/login" not in response.url
    return http


def csrf(stack: Stack, http: requests.Session) -> str:
    return CSRF.search(http.get(f"{stack.base_url}/ops/jobs", timeout=10).text)[1]


def test_health_heartbeats_and_metrics_match_the_database(ops_stack):
    base = ops_stack.base_url
    assert requests.get(f"{base}/healthz", timeout=10).json() == {"status": "ok"}
    ready = requests.get(f"{base}/readyz", timeout=10)
    assert ready.status_code == 200, ready.text

    def every_queue_has_a_live_worker():
        body = requests.get(f"{base}/api/health/queues", timeout=10).json()
        return body if all(body["workers"][q]["alive"] >= 1 for q in body["workers"]) else None

    body = wait_for("heartbeats", every_queue_has_a_live_worker)
    assert body["status"] == "healthy"
    assert body["workers"]["payments"] == {"alive": 1, "dead": 0, "concurrency": 500}
    # hosts and pids only for operators
    details = ops_session(ops_stack).get(f"{base}/ops/health", timeout=10).json()
    worker = details["workers"]["payments"]["processes"][0]
    assert worker["concurrency"] == 500 and worker["pid"] > 0  # jobs in flight (shipped)
    assert details["ready"] is True and details["checks"] == {"database": "ok", "broker": "ok"}

    item = f"OPS-{uuid.uuid4().hex[:8]}"
    ops_stack.add_product(item, stock=5)
    ops_stack.wait_final([ops_stack.checkout(item)])
    text = requests.get(f"{base}/metrics", timeout=10).text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    stored = ops_stack.scalar(
        "SELECT SUM(count) FROM job_stats_minutely "
        "WHERE queue = 'payments' AND type = 'process-payment' AND outcome = 'completed'"
    )
    labels = (("outcome", "completed"), ("queue", "payments"), ("type", "process-payment"))
    assert samples[("shop_jobs_processed_total", labels)] == stored >= 1
    assert samples[("shop_workers_alive", (("queue", "orders"),))] >= 1
    completed = ops_stack.scalar("SELECT COUNT(*) FROM checkouts WHERE status = 'completed'")
    assert samples[("shop_checkouts", (("status", "completed"),))] == completed


def test_a_paused_queue_leaves_checkouts_waiting_until_resumed(ops_stack):
    http = ops_session(ops_stack)
    base = ops_stack.base_url
    assert http.post(
        f"{base}/ops/queues/orders/pause", data={"csrf_token": csrf(ops_stack, http)}
    ).ok
    item = f"OPS-{uuid.uuid4().hex[:8]}"
    ops_stack.add_product(item, stock=5)
    job_id = ops_stack.checkout(item)
    paused_job = ops_stack.scalar(
        "SELECT j.id FROM jobs j JOIN checkouts c ON c.id = j.checkout_id WHERE c.public_id = :p",
        p=job_id,
    )
    try:
        wait_for(
            "the consumer to see the pause",
            lambda: f"job {paused_job}: its queue is paused" in ops_stack.log("orders"),
        )
    except AssertionError:
        raise AssertionError(
            ops_stack.log("orders")[-3000:] + str(ops_stack.status(job_id))
        ) from None
    assert ops_stack.status(job_id)["status"] == "queued"
    more = [ops_stack.checkout(item) for _ in range(4)]  # a backlog for the resume
    assert http.post(
        f"{base}/ops/queues/orders/resume", data={"csrf_token": csrf(ops_stack, http)}
    ).ok
    final = ops_stack.wait_final([job_id, *more])
    assert {state["status"] for state in final.values()} == {"completed"}
    # the consumer's first messages took the waiting jobs of their type together
    # (orders.pipeline.runner): two threads claim five jobs in at most two batches
    log = (ops_stack.data_dir / "orders.log").read_text(errors="replace")
    batches = re.findall(r"\(reserve-stock\) attempt 1: completed \(in a batch of (\d+)\)", log)
    assert batches and max(int(n) for n in batches) >= 3, log[-3000:]
    # and that batch's charges went as one message, charged in a batch of their own
    log = (ops_stack.data_dir / "payments.log").read_text(errors="replace")
    batches = re.findall(r"\(process-payment\) attempt 1: completed \(in a batch of (\d+)\)", log)
    assert batches and max(int(n) for n in batches) >= 3, log[-3000:]


# --- the dashboard in Chromium ---------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM) and not shutil.which("chromium"):
        if os.environ.get("TEST_BROWSER") == "1":
            pytest.fail("TEST_BROWSER=1 but chromium is missing")
        pytest.skip("chromium is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
            ],
        )
        yield chromium
        chromium.close()


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]  # noqa: N802
        self.messages.append(envelope)
        return "250 OK"


@pytest.mark.browser
def test_an_operator_finds_an_order_retries_its_failed_email_and_resets_the_breaker(
    ops_stack, browser
):
    from aiosmtpd.controller import Controller
    from playwright.sync_api import expect

    base = ops_stack.base_url
    email = f"ops-{uuid.uuid4().hex[:8]}@example.com"
    item = f"OPS-{uuid.uuid4().hex[:8]}"
    ops_stack.add_product(item, stock=5)
    response = ops_stack.http.post(
        f"{base}/api/checkout",
        json={"email": email, "items": [{"sku": item, "quantity": 1}], "paymentToken": "tok_visa"},
        timeout=10,
    )
    job_id = response.json()["data"]["jobId"]
    final = ops_stack.wait_final([job_id])[job_id]
    number = final["order"]["orderNumber"]
    sql = (
        "SELECT j.id FROM jobs j JOIN checkouts c ON c.id = j.checkout_id WHERE c.public_id = :p "
        "AND j.type = 'send-order-confirmation' AND j.status = 'failed'"
    )
    failed_job = wait_for("the email job to fail", lambda: ops_stack.scalar(sql, p=job_id))

    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=ops_stack.smtp_port)  # SMTP comes back
    smtp.start()
    page = browser.new_page()
    try:
        page.goto(f"{base}/ops/")
        expect(page).to_have_url(f"{base}/ops/login?next=/ops/?")
        page.fill("input[name=username]", "ops")
        page.fill("input[name=password]", "ops-dev-password")
        page.click("button:has-text('Log in')")
        for queue in ("orders", "payments", "notifications"):
            expect(page.locator(f'#queues tr[data-queue="{queue}"]')).to_be_visible()
        expect(page.locator("#updated")).to_have_attribute("data-live", "on")  # SSE arrived
        expect(page.locator("#chart-throughput polyline").first).to_be_attached()

        page.fill("input[name=q]", email)
        page.press("input[name=q]", "Enter")
        expect(page.locator("#results")).to_contain_text(number)
        page.click(f"a:has-text('{job_id}')")
        expect(page.locator("#timeline")).to_contain_text("Email could not be sent")
        page.click(f"a:has-text('{failed_job[:12]}')")
        expect(page.locator("#job-status")).to_have_text("failed")
        expect(page.locator("#job-error")).to_contain_text("SMTP")
        page.click("button.retry")
        expect(page.locator(".flash.ok")).to_contain_text("queued again")

        def job_completed() -> bool:
            page.reload()
            return page.locator("#job-status").inner_text() == "completed"

        wait_for("the retried job to complete", job_completed)
        assert [m.rcpt_tos for m in inbox.messages] == [[email]]

        if ops_stack.redis_url:
            import redis

            store = redis.Redis.from_url(ops_stack.redis_url)
            store.set(f"{ops_stack.prefix}:payment-gateway:pybreaker:state", "open")
            page.goto(f"{base}/ops/")
            expect(page.locator("#breaker")).to_have_text("open")
            page.click("button:has-text('Reset breaker')")
            expect(page.locator(".flash.ok")).to_contain_text("reset to closed")
            expect(page.locator("#breaker")).to_have_text("closed")
            assert store.get(f"{ops_stack.prefix}:payment-gateway:pybreaker:state") == b"closed"
            store.close()
        else:
            page.goto(f"{base}/ops/")
            expect(page.locator("#breaker")).to_have_text("unknown")
            page.click("button:has-text('Reset breaker')")
            expect(page.locator(".flash.error")).to_contain_text("no Redis")
        page.goto(f"{base}/ops/audit")
        expect(page.locator("#audit")).to_contain_text("retry_job")
        expect(page.locator("#audit")).to_contain_text("reset_breaker")
    finally:
        page.close()
        smtp.stop()
