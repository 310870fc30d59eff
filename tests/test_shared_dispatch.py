"""orders.pipeline.jobs.shared_dispatch: a web process's requests hand their jobs to
the broker together under load, each hearing only of its own jobs that were not sent."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import pytest

from orders.pipeline.jobs import JobRef, shared_dispatch


class Broker:
    """A dispatch that records its calls; the first can be held until released, and
    the ids in ``refuse`` are not sent."""

    def __init__(self, refuse: Sequence[str] = (), fail: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.refuse, self.fail = set(refuse), fail
        self.started, self.release = threading.Event(), threading.Event()

    def __call__(self, refs: Sequence[JobRef]) -> list[str]:
        self.calls.append([ref.id for ref in refs])
        self.started.set()
        assert self.release.wait(10)
        if self.fail:
            raise ConnectionError("the broker is away")
        return [ref.id for ref in refs if ref.id in self.refuse]


def send_from_threads(
    send: Any, asked: dict[str, list[JobRef]], broker: Broker
) -> dict[str, object]:
    """The first caller's send is held until every other caller has queued behind it."""
    got: dict[str, object] = {}

    def one(name: str) -> None:
        try:
            got[name] = send(asked[name])
        except Exception as exc:  # noqa: BLE001 - the outcome under test
            got[name] = exc

    first, *rest = asked
    threads = [threading.Thread(target=one, args=(first,))]
    threads[0].start()
    assert broker.started.wait(10)
    threads += [threading.Thread(target=one, args=(name,)) for name in rest]
    for thread in threads[1:]:
        thread.start()
    while len(send.__self__._queued) < len(rest):  # every other caller queued behind it
        threading.Event().wait(0.01)
    broker.release.set()
    for thread in threads:
        thread.join(20)
        assert not thread.is_alive(), "a caller was left waiting"
    return got


def refs(*ids: str) -> list[JobRef]:
    return [JobRef(job_id, "reserve-stock") for job_id in ids]


def test_alone_a_request_sends_its_jobs_at_once() -> None:
    broker = Broker()
    broker.release.set()
    send = shared_dispatch(broker)
    assert send(refs("a")) == []
    assert send(refs("b", "c")) == []
    assert broker.calls == [["a"], ["b", "c"]]


def test_requests_arriving_during_a_send_share_the_next_one_and_hear_of_their_own() -> None:
    broker = Broker(refuse=["b2", "c1"])
    asked = {"a": refs("a1"), "b": refs("b1", "b2"), "c": refs("c1"), "d": refs("d1")}
    got = send_from_threads(shared_dispatch(broker), asked, broker)
    assert broker.calls[0] == ["a1"]
    assert sorted(broker.calls[1]) == ["b1", "b2", "c1", "d1"]  # one call for the three
    assert got == {"a": [], "b": ["b2"], "c": ["c1"], "d": []}


def test_a_send_that_raises_reaches_every_request_that_shared_it() -> None:
    broker = Broker(fail=True)
    got = send_from_threads(shared_dispatch(broker), {"a": refs("a1"), "b": refs("b1")}, broker)
    assert all(isinstance(outcome, ConnectionError) for outcome in got.values())


@pytest.mark.parametrize("limit", [1, 2])
def test_a_send_carries_at_most_limit_requests(limit: int) -> None:
    broker = Broker()
    asked = {name: refs(f"{name}1") for name in "abcde"}
    got = send_from_threads(shared_dispatch(broker, limit=limit), asked, broker)
    assert got == dict.fromkeys("abcde", [])
    assert max(len(call) for call in broker.calls) == limit
