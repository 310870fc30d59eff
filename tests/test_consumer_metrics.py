"""A consumer's own /metrics: the token guard, the server, the task counters (Huey's
signals from a real in-memory Huey). The real consumers serving it:
tests/e2e/test_monitoring_e2e.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from huey import MemoryHuey
from prometheus_client.parser import text_string_to_metric_families

from orders.infra.consumer_metrics import ConsumerMetrics, instrument, serve

TOKEN = "s3cret-metrics-token-for-tests"


def sample(metrics: ConsumerMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


@pytest.fixture
def served() -> Iterator[tuple[ConsumerMetrics, str]]:
    metrics = ConsumerMetrics()
    server = serve(metrics, "127.0.0.1", 0, TOKEN)
    yield metrics, f"http://127.0.0.1:{server.server_port}/metrics"
    server.shutdown()
    server.server_close()


def test_the_endpoint_asks_for_the_bearer_token(served):
    metrics, url = served
    metrics.threads.labels("payments").set(3)
    assert requests.get(url, timeout=5).status_code == 401
    wrong = requests.get(url, headers={"Authorization": "Bearer nope"}, timeout=5)
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"] == "Bearer"
    response = requests.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
    assert response.status_code == 200
    names = {
        s.name: s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
        if not s.labels or s.labels.get("queue") == "payments"
    }
    assert names["shop_consumer_threads"] == 3
    assert names["process_cpu_seconds_total"] >= 0


def test_without_a_token_anyone_may_scrape():
    metrics = ConsumerMetrics()
    server = serve(metrics, "127.0.0.1", 0, None)
    try:
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        assert requests.get(url, timeout=5).status_code == 200
    finally:
        server.shutdown()
        server.server_close()


def test_tasks_are_counted_by_how_they_end():
    huey = MemoryHuey(immediate=True)
    metrics = ConsumerMetrics()

    @huey.signal()
    def count(signal, task, *exc):  # type: ignore[no-untyped-def]
        metrics.on_signal("orders", signal, task, *exc)

    @huey.task(name="reserve-stock")
    def works() -> int:
        return 1

    @huey.task(name="create-order")
    def breaks() -> None:
        raise RuntimeError("boom")

    works()
    works()
    breaks()
    tasks = "shop_consumer_tasks_total"
    assert sample(metrics, tasks, queue="orders", task="reserve-stock", outcome="complete") == 2
    assert sample(metrics, tasks, queue="orders", task="create-order", outcome="error") == 1
    timed = "shop_consumer_task_duration_seconds_count"
    assert sample(metrics, timed, queue="orders", task="reserve-stock") == 2
    assert sample(metrics, "shop_consumer_tasks_running", queue="orders") == 0


def test_nothing_is_registered_unless_a_port_is_set():
    huey = MemoryHuey(immediate=True)
    instrument(huey, "orders", 2, env={})
    assert huey._signal.receivers == {"any": []}  # type: ignore[attr-defined]
    assert not huey.unregister_on_startup("metrics")
    instrument(huey, "orders", 2, env={"WORKER_METRICS_PORT": "0"})
    assert huey._signal.receivers["any"]  # type: ignore[attr-defined]
    assert huey.unregister_on_startup("metrics")  # (so no server starts here)
