"""What Prometheus scrapes, on real processes: the web's /metrics and each consumer's own
endpoint (WORKER_METRICS_PORT, bearer METRICS_TOKEN) serve every metric the alert rules
and the Grafana dashboard read."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import STACKS, open_stack
from tests.stack import WORKERS, Stack, free_port
from tests.test_monitoring_files import EXTERNAL, used_metrics

pytestmark = [pytest.mark.e2e]
TOKEN = "metrics-" + uuid.uuid4().hex + uuid.uuid4().hex
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(scope="module", params=STACKS)
def monitored(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    """The shop with a metrics port per consumer process (as compose gives each one)."""
    with ExitStack() as exits:
        shop = open_stack(request.param, tmp_path_factory, exits, METRICS_TOKEN=TOKEN)
        exits.callback(shop.close)
        shop.release()
        ports = {}
        for worker in WORKERS:
            ports[worker] = free_port()
            shop.env["WORKER_METRICS_PORT"] = str(ports[worker])
            shop.start(worker)
        del shop.env["WORKER_METRICS_PORT"]
        shop.start("web")
        shop.wait_http()
        shop.metrics_ports = ports  # type: ignore[attr-defined]
        yield shop


def scrape(url: str) -> Samples:
    response = requests.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert response.status_code == 200, response.text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def consumer_url(shop: Stack, worker: str) -> str:
    return f"http://127.0.0.1:{shop.metrics_ports[worker]}/metrics"  # type: ignore[attr-defined]


def wait_up(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=2)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise AssertionError(f"nothing listens on {url}")


def test_each_consumer_serves_its_metrics_behind_the_token(monitored):
    for worker in WORKERS:
        url = consumer_url(monitored, worker)
        wait_up(url)
        assert requests.get(url, timeout=10).status_code == 401
        wrong = {"Authorization": "Bearer not-the-token"}
        assert requests.get(url, headers=wrong, timeout=10).status_code == 401
        samples = scrape(url)
        assert samples[("process_cpu_seconds_total", ())] >= 0
        assert samples[("process_resident_memory_bytes", ())] > 0


def test_the_rules_and_the_dashboard_read_only_metrics_the_shop_serves(monitored):
    item = f"MON-{uuid.uuid4().hex[:8]}"
    monitored.add_product(item, stock=5)
    job_id = monitored.checkout(item)
    assert monitored.wait_final([job_id])[job_id]["status"] == "completed"
    monitored.wait_idle()

    web = scrape(f"{monitored.base_url}/metrics")
    consumers = {worker: scrape(consumer_url(monitored, worker)) for worker in WORKERS}
    served = {name for name, _ in web} | {name for s in consumers.values() for name, _ in s}
    missing = {
        name: sorted(places)
        for name, places in used_metrics().items()
        if name not in served and name not in EXTERNAL
    }
    assert missing == {}

    # the consumers' own numbers agree with the shop's view of them
    for worker, queue in (("orders", "orders"), ("payments", "payments")):
        threads = consumers[worker][("shop_consumer_threads", (("queue", queue),))]
        assert threads == web[("shop_worker_threads", (("queue", queue),))] > 0
        ran = sum(
            value
            for (name, labels), value in consumers[worker].items()
            if name == "shop_consumer_tasks_total" and ("outcome", "complete") in labels
        )
        assert ran >= 1, worker
    assert web[("shop_checkout_outcomes_total", (("code", ""), ("outcome", "completed")))] == 1
    assert web[("shop_checkout_duration_seconds_count", (("outcome", "completed"),))] == 1
    assert web[("shop_checkouts_placed_total", ())] == 1
