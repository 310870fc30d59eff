"""Streams always end, over real HTTP against real gunicorn (gthread on SQLite, gevent on
PostgreSQL): an id beyond the latest, a stuck checkout, too many streams, bad ids."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack

import pytest
import requests

from tests.e2e.conftest import STACKS, open_stack
from tests.sse import Comment, Event, read_stream
from tests.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("stream-limits")]

LIFETIME = 30  # SSE_MAX_SECONDS of this stack: room for a checkout on a loaded CI machine
PER_CLIENT = 2


@pytest.fixture(scope="module", params=STACKS)
def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    with ExitStack() as exits:
        shop = open_stack(
            request.param,
            tmp_path_factory,
            exits,
            SIM_STEP_LATENCY_MS="40-60",
            SIM_GATEWAY_LATENCY_MS="1500",  # a checkout stays in flight for a while
            SSE_HEARTBEAT_SECONDS="0.5",
            SSE_POLL_SECONDS="0.2",
            SSE_MAX_SECONDS=str(LIFETIME),
            SSE_MAX_STREAMS_PER_CLIENT=str(PER_CLIENT),
        )
        exits.callback(shop.close)
        yield shop.up()


@pytest.fixture
def sku(live: Stack) -> str:
    sku = f"SSEL-{uuid.uuid4().hex[:8]}"
    live.add_product(sku, stock=100)
    return sku


@pytest.fixture
def orders_worker_stopped(live: Stack) -> Iterator[None]:
    live.stop("orders")
    try:
        yield
    finally:
        if "orders" not in live.processes:
            live.start("orders")


def stream_url(live: Stack, job_id: str) -> str:
    return f"{live.base_url}/api/orders/status/{job_id}/stream"


def latest_event_id(live: Stack, job_id: str) -> int:
    return int(
        live.scalar(
            "SELECT MAX(e.id) FROM checkout_events e JOIN checkouts c ON c.id = e.checkout_id "
            "WHERE c.public_id = :job",
            job=job_id,
        )
    )


def test_an_id_beyond_the_latest_streams_from_now_and_ends(live: Stack, sku: str) -> None:
    """It used to wait after that id forever (heartbeats only), never sending the final
    event, which came with a smaller id; now it starts from the current state and
    closes when the checkout completes (the payment takes 1.5 s: it is in flight)."""
    job_id = live.checkout(sku)
    placed = latest_event_id(live, job_id)
    events = [
        item
        for item in read_stream(stream_url(live, job_id), {"Last-Event-ID": str(10**17)})
        if isinstance(item, Event)
    ]
    assert events[0].id >= placed  # the state as it stood, never an old row replayed
    assert events[-1].name == "completed", events  # closed by the checkout, not the lifetime
    ids = [e.id for e in events]
    assert ids == sorted(set(ids)) and ids[-1] < 10**17


def test_a_stream_on_a_stuck_checkout_ends_at_its_lifetime(
    live: Stack, sku: str, orders_worker_stopped: None
) -> None:
    """Nothing happens to the checkout, yet the server closes the stream (it used to
    send heartbeats for as long as the client stayed)."""
    job_id = live.checkout(sku)
    items = list(read_stream(stream_url(live, job_id), timeout=LIFETIME * 5))
    events = [item for item in items if isinstance(item, Event)]
    assert [e.data["status"] for e in events] == ["queued"]  # then only heartbeats
    assert any(isinstance(item, Comment) for item in items)
    assert live.status(job_id)["status"] == "queued"  # still stuck: the lifetime ended it


def test_streams_past_the_cap_per_client_are_429(
    live: Stack, sku: str, orders_worker_stopped: None
) -> None:
    job_id = live.checkout(sku)
    url = stream_url(live, job_id)
    held = [requests.get(url, stream=True, timeout=30) for _ in range(PER_CLIENT)]
    try:
        assert [r.status_code for r in held] == [200] * PER_CLIENT
        refused = requests.get(url, timeout=10)
        assert refused.status_code == 429
        assert refused.headers["Content-Type"] == "application/problem+json"
        assert refused.json()["code"] == "too_many_streams"
        assert int(refused.headers["Retry-After"]) >= 1
        assert requests.get(f"{live.base_url}/api/products", timeout=10).ok  # the rest serves
    finally:
        for response in held:
            response.close()
    # a closed stream gives its slot back (the server notices at its next heartbeat)
    for _ in range(200):
        with requests.get(url, stream=True, timeout=30) as again:
            if again.status_code == 200:
                break
        time.sleep(0.1)
    else:
        raise AssertionError("the slots of closed streams never came back")


@pytest.mark.parametrize(
    ("where", "value"),
    [
        ("Last-Event-ID", "²"),  # str.isdigit() says yes, int() says no: it was a 500
        ("Last-Event-ID", "9" * 19),
        ("Last-Event-ID", "-1"),
        ("lastEventId", "²"),
        ("lastEventId", "١٢٣"),  # Arabic-Indic digits
        ("lastEventId", "１２"),  # full-width digits
        ("lastEventId", "1e3"),
    ],
)
def test_malformed_event_ids_are_422_naming_the_field(
    live: Stack, sku: str, where: str, value: str
) -> None:
    job_id = live.checkout(sku)
    if where == "Last-Event-ID":
        response = requests.get(
            stream_url(live, job_id), headers={where: value.encode("latin-1")}, timeout=10
        )
    else:
        response = requests.get(stream_url(live, job_id), params={where: value}, timeout=10)
    assert response.status_code == 422, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json()["errors"][0]["field"] == where
