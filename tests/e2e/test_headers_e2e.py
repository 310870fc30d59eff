"""A production shop on real gunicorn, asked what a stranger would ask: the headers on
its answers, the probes, /metrics, the synchronous checkout and an order number."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import ExitStack

import pytest
import requests

from tests.e2e.conftest import open_stack
from tests.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("headers")]

TOKEN = "metrics-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with ExitStack() as exits:
        shop = open_stack(
            "sqlite",
            tmp_path_factory,
            exits,
            SHOP_ENV="production",
            SECRET_KEY=uuid.uuid4().hex + uuid.uuid4().hex,
            OPS_PASSWORD="a-long-unique-operator-password",
            SHOP_ALLOW_SIMULATED_GATEWAY="1",
            METRICS_TOKEN=TOKEN,
        )
        exits.callback(shop.close)
        yield shop.up()


def test_pages_and_answers_are_not_stored_and_https_is_pinned(production: Stack) -> None:
    base = production.base_url
    for path in ("/", "/cart", "/api/products", "/api/orders/status/nope", "/healthz"):
        response = requests.get(f"{base}{path}", timeout=10)
        assert response.headers["Cache-Control"] == "no-store", path
        assert response.headers["Strict-Transport-Security"].startswith("max-age="), path
    page = requests.get(f"{base}/", timeout=10).text
    static = re.search(r'href="(/static/[^"]+)"', page)
    assert static, "the page links no static file"
    asset = requests.get(f"{base}{static[1]}", timeout=10)
    assert asset.ok and asset.headers.get("Cache-Control") != "no-store"  # cacheable


def test_metrics_need_the_token(production: Stack) -> None:
    url = f"{production.base_url}/metrics"
    refused = requests.get(url, timeout=10)
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    allowed = requests.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert allowed.status_code == 200 and "shop_queue_jobs" in allowed.text


def test_the_sync_checkout_is_not_served(production: Stack) -> None:
    sku = f"HDR-{uuid.uuid4().hex[:8]}"
    production.add_product(sku, stock=5)
    response = requests.post(
        f"{production.base_url}/api/checkout/sync",
        json={"email": "a@example.com", "items": [{"sku": sku, "quantity": 1}]},
        timeout=10,
    )
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/problem+json"
    assert production.scalar("SELECT COUNT(*) FROM checkouts") == 0


def test_probes_and_an_order_number_tell_a_stranger_nothing(production: Stack) -> None:
    import socket

    base = production.base_url
    sku = f"HDR-{uuid.uuid4().hex[:8]}"
    production.add_product(sku, stock=5)
    job_id = production.checkout(sku)
    number = production.wait_final([job_id])[job_id]["order"]["orderNumber"]
    public = requests.get(f"{base}/api/orders/{number}", timeout=10)
    assert public.json()["view"] == "public" and "e2e@example.com" not in public.text
    full = requests.get(f"{base}/api/orders/{number}", headers={"X-Job-Id": job_id}, timeout=10)
    assert full.json()["email"] == "e2e@example.com"
    host = socket.gethostname()
    for path in ("/healthz", "/readyz", "/api/health/queues"):
        text = requests.get(f"{base}{path}", timeout=10).text
        assert host not in text and '"pid"' not in text and "hostname" not in text, path
