"""A shopper in real Chromium: buy with a live progress bar, recover from a decline,
and the polling fallback when EventSource is missing. Real gunicorn + consumers."""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from tests.e2e.conftest import STACKS, open_stack
from tests.stack import Stack

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.xdist_group("stream")]

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
RECORD_PROGRESS = """
document.addEventListener("DOMContentLoaded", () => {
  const bar = document.querySelector("[data-testid=progress]");
  if (!bar) return;
  const note = () => {
    const seen = JSON.parse(sessionStorage.getItem("seen") || "[]");
    seen.push(Number(bar.getAttribute("aria-valuenow")));
    sessionStorage.setItem("seen", JSON.stringify(seen));
  };
  note();
  new MutationObserver(note).observe(bar, {attributes: true, attributeFilter: ["aria-valuenow"]});
});
"""


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    if not os.path.exists(CHROMIUM) and not shutil.which("chromium"):
        if os.environ.get("TEST_BROWSER") == "1":
            pytest.fail("TEST_BROWSER=1 but chromium is missing")
        pytest.skip("chromium is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module", params=STACKS)
def shop(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """The whole shop with modest latency, so the bar visibly moves."""
    with ExitStack() as exits:
        stack = open_stack(
            request.param,
            tmp_path_factory,
            exits,
            SIM_STEP_LATENCY_MS="250-350",
            SIM_GATEWAY_LATENCY_MS="400-500",
        )
        exits.callback(stack.close)
        yield stack.up()


@pytest.fixture
def page(chromium, shop: Stack):  # type: ignore[no-untyped-def]
    context = chromium.new_context(base_url=shop.base_url)
    context.add_init_script(RECORD_PROGRESS)
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.requests = []  # type: ignore[attr-defined]
    page.on("request", lambda r: page.requests.append(r.url))  # type: ignore[attr-defined]
    yield page
    context.close()


@pytest.fixture
def sku(shop: Stack) -> str:
    sku = f"WEB-{uuid.uuid4().hex[:8]}"
    shop.add_product(sku, stock=20, price_cents=1999)
    return sku


def fill_cart_and_check_out(page, sku: str, card: str) -> str:  # type: ignore[no-untyped-def]
    page.goto("/")
    card_box = page.locator(f'[data-testid=product-card][data-sku="{sku}"]')
    card_box.get_by_test_id("add-to-cart").click()
    page.get_by_test_id("cart-link").click()
    page.get_by_role("link", name="Go to checkout").click()
    form = page.get_by_test_id("checkout-form")
    form.get_by_test_id("email").fill("shopper@example.com")
    form.locator(f"input[name=paymentToken][value={card}]").check()
    form.get_by_test_id("place-order").click()
    page.wait_for_url(re.compile(r"/checkout/[0-9a-f]+"))
    return re.search(r"/checkout/([0-9a-f]+)", page.url).group(1)


def seen(page) -> list[int]:  # type: ignore[no-untyped-def]
    return json.loads(page.evaluate("sessionStorage.getItem('seen') || '[]'"))


def test_buy_and_watch_the_bar_reach_100(page, shop: Stack, sku: str) -> None:
    job_id = fill_cart_and_check_out(page, sku, "tok_visa")

    number = page.get_by_test_id("order-number")
    number.wait_for()
    assert number.inner_text().startswith("ORD-")
    assert page.get_by_test_id("progress").get_attribute("aria-valuenow") == "100"
    values = seen(page)
    assert values[-1] == 100 and values == sorted(values), values
    assert len({v for v in values if 0 < v < 100}) >= 2, f"the bar did not move: {values}"
    assert any(url.endswith(f"/api/orders/status/{job_id}/stream") for url in page.requests)
    assert not any(url.endswith(f"/api/orders/status/{job_id}") for url in page.requests)


def test_declined_card_then_another_card_completes_the_same_checkout(
    page, shop: Stack, sku: str
) -> None:
    job_id = fill_cart_and_check_out(page, sku, "tok_declined")

    reason = page.get_by_test_id("failure-reason")
    reason.wait_for()
    assert "declined" in reason.inner_text().lower()
    page.locator("input[name=paymentToken][value=tok_visa]").check()
    page.get_by_test_id("retry-payment").click()

    page.get_by_test_id("order-number").wait_for()
    assert f"/checkout/{job_id}/done" in page.url  # the same checkout, not a new one
    assert any(url.endswith("/api/payments") for url in page.requests)
    assert shop.status(job_id)["status"] == "completed"


def test_polling_fallback_without_event_source(page, shop: Stack, sku: str) -> None:
    page.context.add_init_script("delete window.EventSource;")
    job_id = fill_cart_and_check_out(page, sku, "tok_visa")

    page.get_by_test_id("order-number").wait_for()
    assert seen(page)[-1] == 100
    assert any(url.endswith(f"/api/orders/status/{job_id}") for url in page.requests)
    assert not any(url.endswith("/stream") for url in page.requests)
