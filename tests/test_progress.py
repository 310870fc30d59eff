"""The stream's logic (services.progress) and the one-subscription hub (real Redis)."""

from __future__ import annotations

import time
import uuid

import pytest

from orders.infra.pubsub import Hub, progress_channel, redis_publisher
from orders.shop.progress import Opening, ProgressEvent, follow_progress, open_progress
from tests.conftest import REDIS_URL


def event(id_: int, status: str, progress: int = 10) -> ProgressEvent:
    return ProgressEvent(id_, {"status": status, "progress": progress})


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def wait(self, timeout: float) -> bool:
        self.now += timeout
        return False


def test_opening_events_then_new_rows_then_stop_after_final() -> None:
    clock = Clock()
    batches = [[], [event(3, "processing", 35)], [event(4, "completed", 100), event(5, "x")]]
    reads: list[int] = []

    def read_after(after: int) -> list[ProgressEvent]:
        reads.append(after)
        return batches.pop(0)

    opening = Opening(1, "job", [event(2, "queued", 0)], 0)
    text = "".join(
        follow_progress(
            opening, read_after, clock.wait, heartbeat_seconds=15, poll_seconds=1, clock=clock
        )
    )
    assert reads == [2, 2, 3]  # each read asks for rows after the last one sent
    assert text.count("event: progress") == 2 and text.count("event: completed") == 1
    assert "id: 5" not in text  # nothing after the final event
    assert text.index("id: 2") < text.index("id: 3") < text.index("id: 4")


def test_heartbeat_while_nothing_happens_and_a_failed_read_is_retried_soon() -> None:
    clock = Clock()
    calls = {"n": 0}

    def read_after(after: int) -> list[ProgressEvent]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("too many clients")
        return [] if clock.now < 40 else [event(9, "failed")]

    stream = follow_progress(
        Opening(1, "job", [event(2, "queued")], 0),
        read_after,
        clock.wait,
        heartbeat_seconds=15,
        poll_seconds=15,
        clock=clock,
        retry_seconds=1,
    )
    text = "".join(stream)
    assert text.count(": heartbeat") >= 2
    assert text.rstrip().endswith('"progress":10}') and "event: failed" in text
    assert calls["n"] >= 3  # the failed read was retried after 1 s, not after 15 s


def test_a_final_opening_ends_at_once() -> None:
    text = "".join(
        follow_progress(
            Opening(1, "job", [event(7, "completed", 100)], 0),
            lambda _after: pytest.fail("no read after a final event"),
            lambda _t: False,
            heartbeat_seconds=15,
            poll_seconds=1,
            clock=time.monotonic,
        )
    )
    assert "event: completed" in text


def test_open_progress_unknown_job_is_not_found(session) -> None:
    from orders.errors import NotFound

    with pytest.raises(NotFound):
        open_progress(session, "nope", None)


def test_an_opening_is_never_older_than_the_event_id_it_carries(
    session, settings, dispatched, drain
) -> None:
    """The checkout moves while a stream opens (between the opening's statements): the
    state sent may be newer than its event id (the client then sees a row again), never
    older (the stream would wait for an event that had already happened)."""
    import json

    from sqlalchemy import event as sa_event
    from sqlalchemy import select

    from orders.checkout.place import place_checkout
    from orders.db import make_engine, make_session_factory
    from orders.models import CheckoutEvent
    from tests.factories import checkout_body, make_product

    make_product(session, sku="TEE", stock=5)
    writes = make_engine(settings)
    with make_session_factory(writes)() as writer:
        placed = place_checkout(writer, settings, checkout_body(("TEE", 1)), dispatched)
    writes.dispose()
    engine = make_engine(settings, immediate=False)
    moved: list[str] = []

    @sa_event.listens_for(engine, "after_cursor_execute")
    def _move_after_the_first_statement(*_args: object) -> None:
        if not moved:
            moved.append("yes")
            drain()  # the whole pipeline runs: the checkout completes

    with make_session_factory(engine)() as reader:
        opening = open_progress(reader, placed.public_id, None)
    engine.dispose()
    assert moved
    sent = opening.events[0]
    row = session.scalar(select(CheckoutEvent.status_json).where(CheckoutEvent.id == sent.id))
    order = ["queued", "processing", "completed"]
    assert order.index(sent.data["status"]) >= order.index(json.loads(row)["status"])


def test_streams_read_together_get_what_each_would_read_alone_in_one_statement(
    session, settings, dispatched, drain
) -> None:
    from sqlalchemy import event as sa_event

    from orders.checkout.place import place_checkout
    from orders.db import make_engine
    from orders.models import Checkout
    from orders.shop.progress import events_after, events_after_each
    from tests.factories import checkout_body, make_product

    make_product(session, sku="TEE", stock=5)
    placed = [
        place_checkout(session, settings, checkout_body(("TEE", 1)), dispatched) for _ in "ab"
    ]
    drain()  # both complete: a timeline of several rows each
    a, b = (session.query(Checkout).filter_by(public_id=p.public_id).one().id for p in placed)
    timeline_a = events_after(session, a, 0)
    assert len(timeline_a) > 3
    wanted = [(a, timeline_a[1].id), (b, 0), (a, timeline_a[-1].id), (a, 0)]
    engine = make_engine(settings, immediate=False)  # SQLite: no BEGIN IMMEDIATE first
    statements: list[str] = []
    sa_event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    try:
        with engine.connect() as conn:
            together = events_after_each(conn, wanted)
    finally:
        engine.dispose()
    assert len(statements) == 1
    assert together == [events_after(session, checkout, after) for checkout, after in wanted]
    assert together[2] == [] and together[0] == timeline_a[2:]


def test_streams_opened_together_get_what_each_would_alone_in_one_statement(
    session, settings, dispatched, drain
) -> None:
    """New streams (the latest row), resumes (the rows missed; ``ended`` after the
    final one), an id beyond the latest, and an unknown job, opened in one read."""
    from sqlalchemy import event as sa_event

    from orders.checkout.place import place_checkout
    from orders.db import make_engine
    from orders.errors import NotFound
    from orders.models import Checkout
    from orders.shop.progress import events_after, open_each
    from tests.factories import checkout_body, make_product

    make_product(session, sku="TEE", stock=5)
    done = place_checkout(session, settings, checkout_body(("TEE", 1)), dispatched).public_id
    drain()  # completes: a timeline of several rows
    waiting = place_checkout(session, settings, checkout_body(("TEE", 1)), dispatched).public_id
    row_id = session.query(Checkout).filter_by(public_id=done).one().id
    timeline = events_after(session, row_id, 0)
    assert len(timeline) > 3 and timeline[-1].final
    wanted: list[tuple[str, int | None]] = [
        (done, None),  # from now: the final state, under the latest row's id
        (waiting, None),
        (done, timeline[1].id),  # resumed: the rows after that one
        (done, timeline[-1].id),  # resumed after the final row: ended
        (done, timeline[-1].id + 10_000),  # beyond the latest: from now
        ("nope", None),
    ]
    engine = make_engine(settings, immediate=False)  # SQLite: no BEGIN IMMEDIATE first
    statements: list[str] = []
    sa_event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    try:
        with engine.connect() as conn:
            now = open_each(conn, wanted[:2])
            assert len(statements) == 1  # nobody resumes: one statement
            together = open_each(conn, wanted)
    finally:
        engine.dispose()
    assert len(statements) == 3  # the latest rows, and the rows missed
    fresh, queued, resumed, ended, beyond, unknown = together
    assert now == [fresh, queued]
    assert [(e.id, e.data) for e in fresh.events] == [(timeline[-1].id, timeline[-1].data)]
    assert fresh.events[0].name == "completed" and not fresh.ended
    assert queued.events[0].data["status"] == "queued" and queued.after_id == 0
    final = next(n for n, e in enumerate(timeline) if e.final)  # rows after it: no matter
    assert resumed.events == timeline[2 : final + 1] and resumed.after_id == timeline[1].id
    assert ended.events == [] and ended.ended
    assert beyond == fresh
    assert isinstance(unknown, NotFound)


def test_each_wake_up_is_one_write() -> None:
    """The opening (retry advice and its events) and every batch read after a wake-up
    leave as one text each: one socket send, not one per event."""
    clock = Clock()
    batches = [[event(3, "processing", 35), event(4, "processing", 60)], [event(5, "completed")]]
    writes = list(
        follow_progress(
            Opening(1, "job", [event(2, "queued", 0)], 0),
            lambda _after: batches.pop(0),
            clock.wait,
            heartbeat_seconds=15,
            poll_seconds=1,
            clock=clock,
        )
    )
    assert len(writes) == 3
    assert writes[0].startswith("retry: 2000") and "id: 2\n" in writes[0]
    assert "id: 3\n" in writes[1] and "id: 4\n" in writes[1]
    assert writes[2].startswith("id: 5\nevent: completed")


@pytest.mark.redis
def test_one_subscription_rings_only_the_watchers_of_that_checkout(request) -> None:
    import redis

    channel = progress_channel(f"t{uuid.uuid4().hex[:8]}")
    hub = Hub(lambda: redis.Redis.from_url(REDIS_URL), channel)
    a1, a2, b = hub.watch("A"), hub.watch("A"), hub.watch("B")
    request.addfinalizer(hub.close)
    assert hub.connected.wait(5)
    for waiter in (a1, a2, b):
        waiter.wait(0)  # the bells rung on connecting
    client = redis.Redis.from_url(REDIS_URL)
    publish = redis_publisher(client, channel)
    assert client.pubsub_numsub(channel)[0][1] == 1  # one subscription for three streams

    publish("A")
    assert a1.wait(5) and a2.wait(5)
    assert not b.wait(0.3)
    hub.unwatch("A", a1)
    publish("A")
    assert a2.wait(5) and not a1.wait(0.3)
    assert hub.watching() == 2
    c = hub.watch("C")
    publish("B C")  # one message for a batch's checkouts (orders.pipeline.runner)
    assert b.wait(5) and c.wait(5) and not a2.wait(0.3)
    client.close()
