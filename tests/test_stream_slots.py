"""Streams always end, and a process holds only so many: the caps, the lifetime and
"from now" in-process (tests/e2e/test_stream_limits.py sends the same over real HTTP)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from orders.errors import RateLimited
from orders.shop.progress import Opening, ProgressEvent, follow_progress, open_progress
from orders.web.stream_slots import StreamSlots
from tests.factories import checkout_body, make_product
from tests.support import RecordingDispatch


def test_slots_cap_each_client_and_the_process():
    slots = StreamSlots(per_process=3, per_client=2)
    slots.take("a")
    slots.take("a")
    with pytest.raises(RateLimited) as refused:
        slots.take("a")
    assert refused.value.code == "too_many_streams" and refused.value.retry_after >= 1
    slots.take("b")
    with pytest.raises(RateLimited):
        slots.take("c")  # the process is full, whoever asks
    slots.give_back("a")
    slots.take("c")
    assert slots.open() == 3


def test_no_cap_per_client_when_set_to_zero():
    slots = StreamSlots(per_process=5, per_client=0)
    for _ in range(5):
        slots.take("bench")
    with pytest.raises(RateLimited):
        slots.take("bench")


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.now += seconds
        return False


def test_a_stream_with_nothing_new_ends_at_its_lifetime():
    clock = FakeClock()
    opening = Opening(1, "job", [ProgressEvent(5, {"status": "queued"})], 0)
    text = list(
        follow_progress(
            opening,
            lambda _after: [],  # the checkout never moves
            clock.wait,
            heartbeat_seconds=15,
            poll_seconds=1,
            clock=clock,
            max_seconds=60,
        )
    )
    assert "id: 5\n" in text[0] and text.count(": heartbeat\n\n") == 4
    assert clock.now == 60  # it waited no longer than its lifetime


@pytest.fixture
def placed(client, session) -> str:  # type: ignore[no-untyped-def]
    make_product(session, sku="FROMNOW", stock=5)
    response = client.post("/api/checkout", json=checkout_body(("FROMNOW", 1)))
    return str(response.get_json()["data"]["jobId"])


def test_an_event_id_beyond_the_latest_opens_from_now(session, placed):
    from sqlalchemy import func, select

    from orders.models import CheckoutEvent

    latest = session.scalar(select(func.max(CheckoutEvent.id)))
    for after in (latest + 1, 10**17):
        opening = open_progress(session, placed, after)
        assert [(e.id, e.data["status"]) for e in opening.events] == [(latest, "queued")]
    replay = open_progress(session, placed, latest)  # the latest itself: nothing missed
    assert replay.events == []


@pytest.fixture
def capped_app(settings) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    from app import create_app
    from orders.web.extensions import db

    app = create_app(
        {
            "TESTING": True,
            "DISPATCH": RecordingDispatch(),
            "data_dir": settings.data_dir,
            "database_url": settings.database_url,
            "sse_max_streams": 3,
            "sse_max_streams_per_client": 2,
            "sse_poll_seconds": 0.05,
        }
    )
    yield app
    with app.app_context():
        db.engine.dispose()
    streams = app.extensions.get("shop.stream_engine")  # the streams' own pool
    if streams is not None:
        streams.dispose()


def test_streams_past_the_process_cap_are_429_whoever_asks(capped_app, session):
    make_product(session, sku="CAP", stock=5)
    client = capped_app.test_client()
    job_id = client.post("/api/checkout", json=checkout_body(("CAP", 1))).get_json()["data"][
        "jobId"
    ]
    url = f"/api/orders/status/{job_id}/stream"
    held = []
    for address in ("10.0.0.1", "10.0.0.1", "10.0.0.2"):
        response = client.get(url, buffered=False, environ_base={"REMOTE_ADDR": address})
        assert response.status_code == 200
        held.append(response)
    same = client.get(url, buffered=False, environ_base={"REMOTE_ADDR": "10.0.0.2"})
    other = client.get(url, buffered=False, environ_base={"REMOTE_ADDR": "10.0.0.3"})
    for refused in (same, other):
        assert refused.status_code == 429
        assert refused.mimetype == "application/problem+json"
        assert refused.get_json()["code"] == "too_many_streams"
    held.pop().close()  # a stream that ends gives its slot back
    again = client.get(url, buffered=False, environ_base={"REMOTE_ADDR": "10.0.0.3"})
    assert again.status_code == 200
    for response in (*held, again):
        response.close()
    assert capped_app.extensions["shop.stream_slots"].open() == 0
