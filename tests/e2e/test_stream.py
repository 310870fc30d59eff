"""The progress stream over real HTTP against real gunicorn + consumers, both backends."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack

import pytest
import requests

from tests.e2e.conftest import STACKS, open_stack
from tests.sse import Comment, Event, events_until_closed, read_stream
from tests.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("stream")]


@pytest.fixture(scope="module", params=STACKS)
def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """A stack whose steps take a little time, with a short heartbeat."""
    with ExitStack() as exits:
        shop = open_stack(
            request.param,
            tmp_path_factory,
            exits,
            SIM_STEP_LATENCY_MS="40-60",
            SIM_GATEWAY_LATENCY_MS="80",
            SSE_HEARTBEAT_SECONDS="0.5",
            SSE_POLL_SECONDS="0.2",
        )
        exits.callback(shop.close)
        yield shop.up()


@pytest.fixture
def sku(live: Stack) -> str:
    sku = f"SSE-{uuid.uuid4().hex[:8]}"
    live.add_product(sku, stock=100)
    return sku


def stream_url(live: Stack, job_id: str) -> str:
    return f"{live.base_url}/api/orders/status/{job_id}/stream"


def timeline_ids(live: Stack, job_id: str) -> list[int]:
    with live.engine.connect() as conn:
        from sqlalchemy import text

        rows = conn.execute(
            text(
                "SELECT e.id FROM checkout_events e JOIN checkouts c ON c.id = e.checkout_id "
                "WHERE c.public_id = :job ORDER BY e.id"
            ),
            {"job": job_id},
        )
        return [row[0] for row in rows]


def assert_consistent(events: list[Event]) -> None:
    ids = [e.id for e in events]
    assert all(isinstance(i, int) for i in ids)
    assert ids == sorted(set(ids)), f"ids not strictly ascending: {ids}"
    for event in events:
        expected = event.data["status"] if event.data["status"] in ("completed", "failed") else None
        assert event.name == (expected or "progress"), event


def test_stream_delivers_every_step_in_order_then_closes(live: Stack, sku: str) -> None:
    job_id = live.checkout(sku)
    events = events_until_closed(stream_url(live, job_id))  # returns only when the server closes

    assert_consistent(events)
    assert events[0].data["status"] in ("queued", "processing")
    final = events[-1]
    assert final.name == "completed" and final.data["progress"] == 100
    assert final.data["order"]["orderNumber"].startswith("ORD-")
    assert [e.name for e in events[:-1]] == ["progress"] * (len(events) - 1)
    # Nothing between the first event and completion was skipped.
    ids = timeline_ids(live, job_id)
    expected = [i for i in ids if events[0].id < i <= final.id]
    assert [e.id for e in events[1:]] == expected
    steps = [e.data.get("step") for e in events if e.name == "progress"]
    assert "charging_payment" in steps and "updating_inventory" in steps
    progress = [e.data["progress"] for e in events]
    assert progress == sorted(progress)


def test_declined_card_ends_the_stream_with_failed(live: Stack, sku: str) -> None:
    job_id = live.checkout(sku, token="tok_declined")
    events = events_until_closed(stream_url(live, job_id))

    assert_consistent(events)
    assert events[-1].name == "failed"
    assert events[-1].data["code"] == "payment_declined"
    assert "declined" in events[-1].data["error"].lower()


def test_reconnect_with_last_event_id_replays_without_duplicates(live: Stack, sku: str) -> None:
    job_id = live.checkout(sku)
    first: list[Event] = []
    for item in read_stream(stream_url(live, job_id)):
        if isinstance(item, Event):
            first.append(item)
            if len(first) == 2 or item.name == "completed":
                break  # the client drops the connection mid-way
    resumed = events_until_closed(stream_url(live, job_id), **{"Last-Event-ID": str(first[-1].id)})

    events = first + resumed
    assert_consistent(events)  # ascending and no duplicate ids across the two connections
    assert events[-1].name == "completed"
    ids = timeline_ids(live, job_id)
    assert [e.id for e in events[1:]] == [i for i in ids if first[0].id < i <= events[-1].id]


def wait_for_email_row(live: Stack, job_id: str) -> None:
    """The confirmation email's timeline row comes after completion (a follow-up job)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = live.scalar(
            "SELECT COUNT(*) FROM checkout_events e JOIN checkouts c ON c.id = e.checkout_id "
            "WHERE c.public_id = :job AND e.message LIKE 'Email %'",
            job=job_id,
        )
        if found:
            return
        time.sleep(0.2)
    raise AssertionError(f"no email row for {job_id}:\n{live.log('notifications')}")


def test_query_parameter_resumes_too_and_a_finished_stream_answers_204(
    live: Stack, sku: str
) -> None:
    job_id = live.checkout(sku)
    live.wait_final([job_id])
    wait_for_email_row(live, job_id)
    ids = timeline_ids(live, job_id)
    replay = events_until_closed(f"{stream_url(live, job_id)}?lastEventId={ids[0]}")
    completed_id = replay[-1].id
    assert replay[-1].name == "completed"
    assert [e.id for e in replay] == [i for i in ids[1:] if i <= completed_id]
    assert completed_id < ids[-1]  # the email row came after it

    # Resuming after "completed": the later (email) row still shows the final state.
    after = events_until_closed(stream_url(live, job_id), **{"Last-Event-ID": str(completed_id)})
    assert [(e.id, e.name) for e in after] == [(ids[ids.index(completed_id) + 1], "completed")]
    # Resuming after the last row: nothing more will come; 204 stops EventSource.
    done = requests.get(stream_url(live, job_id), headers={"Last-Event-ID": str(ids[-1])})
    assert done.status_code == 204 and done.text == ""


def test_headers_for_proxies(live: Stack, sku: str) -> None:
    job_id = live.checkout(sku)
    with requests.get(stream_url(live, job_id), stream=True, timeout=30) as response:
        assert response.headers["Cache-Control"] == "no-cache"
        assert response.headers["X-Accel-Buffering"] == "no"
        assert response.headers["Content-Type"].startswith("text/event-stream")


def test_unknown_job_is_a_404_problem(live: Stack) -> None:
    response = requests.get(stream_url(live, "nope-" + uuid.uuid4().hex), timeout=10)
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json()["title"] == "Job not found"


def test_bad_last_event_id_is_a_422_problem(live: Stack, sku: str) -> None:
    job_id = live.checkout(sku)
    response = requests.get(stream_url(live, job_id), headers={"Last-Event-ID": "x1"}, timeout=10)
    assert response.status_code == 422
    assert response.headers["Content-Type"] == "application/problem+json"


@pytest.fixture
def orders_worker_stopped(live: Stack) -> Iterator[None]:
    live.stop("orders")
    try:
        yield
    finally:
        if "orders" not in live.processes:
            live.start("orders")


def test_idle_stream_sends_heartbeats_then_wakes_up(
    live: Stack, sku: str, orders_worker_stopped: None
) -> None:
    job_id = live.checkout(sku)  # nobody takes reserve-stock while the orders worker is down
    items = read_stream(stream_url(live, job_id))
    first = next(items)
    assert isinstance(first, Event) and first.data["status"] == "queued"
    beats = 0
    for item in items:
        assert isinstance(item, Comment), f"no event expected while the worker is down: {item}"
        beats += 1
        if beats == 3:
            break
    live.start("orders")  # the same open stream now gets the rest
    rest = [item for item in items if isinstance(item, Event)]
    assert_consistent([first, *rest])
    assert rest[-1].name == "completed"


def test_worker_class_follows_the_database(live: Stack) -> None:
    """gevent where the driver cooperates (PostgreSQL), gthread on SQLite (gunicorn.conf.py)."""
    expected = "gthread" if live.env["DATABASE_URL"].startswith("sqlite") else "gevent"
    assert f"Using worker: {expected}" in live.log("web")
