"""orders.infra.combiner: callers that arrive while a write is in flight share the next
write, each gets its own outcome, and no caller is ever left waiting."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from orders.infra.combiner import Combiner, WriterStopped
from tests.support import run_python


class Writes:
    """A write that records its batches; the first one can be held until released."""

    def __init__(self, hold_first: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.started = threading.Event()
        self.release = threading.Event()
        if not hold_first:
            self.release.set()

    def __call__(self, items: Sequence[int]) -> list[int | BaseException]:
        self.batches.append(list(items))
        self.started.set()
        assert self.release.wait(10)
        return [ValueError(f"no {item}") if item < 0 else item * 10 for item in items]


def submit_all(combiner: Combiner[int, int], items: Sequence[int]) -> dict[int, object]:
    """Each item from its own thread, at once; what each caller got."""
    got: dict[int, object] = {}

    def one(item: int) -> None:
        try:
            got[item] = combiner.submit(item)
        except BaseException as exc:  # noqa: BLE001 - the outcome under test
            got[item] = exc

    threads = [threading.Thread(target=one, args=(item,)) for item in items]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
        assert not thread.is_alive(), "a caller was left waiting"
    return got


def test_alone_a_caller_writes_at_once() -> None:
    writes = Writes()
    combiner = Combiner(writes)
    assert [combiner.submit(n) for n in (1, 2, 3)] == [10, 20, 30]
    assert writes.batches == [[1], [2], [3]]


def test_callers_arriving_during_a_write_share_the_next_one() -> None:
    writes = Writes(hold_first=True)
    combiner = Combiner(writes, limit=50)
    first = threading.Thread(target=combiner.submit, args=(0,))
    first.start()
    assert writes.started.wait(10)
    waiting = [threading.Thread(target=submit_all, args=(combiner, [n])) for n in range(1, 9)]
    for thread in waiting:
        thread.start()
    while len(combiner._queued) < 8:  # every one queued behind the write in flight
        threading.Event().wait(0.01)
    writes.release.set()
    first.join(10)
    for thread in waiting:
        thread.join(10)
    assert writes.batches[0] == [0]
    assert sorted(writes.batches[1]) == list(range(1, 9))
    assert (combiner.batches, combiner.items) == (2, 9)


def test_each_caller_gets_its_own_outcome_and_the_limit_holds() -> None:
    writes = Writes()
    combiner = Combiner(writes, limit=4)
    items = [n if n % 5 else -n for n in range(1, 41)]
    got = submit_all(combiner, items)
    for item in items:
        if item < 0:
            assert isinstance(got[item], ValueError) and str(got[item]) == f"no {item}"
        else:
            assert got[item] == item * 10
    assert all(len(batch) <= 4 for batch in writes.batches)
    assert sorted(n for batch in writes.batches for n in batch) == sorted(items)


def test_a_write_that_raises_fails_its_batch_only() -> None:
    calls = []

    def write(items: Sequence[int]) -> list[int]:
        calls.append(list(items))
        if 13 in items:
            raise ConnectionError("database gone")
        return [item for item in items]

    combiner = Combiner(write)
    with pytest.raises(ConnectionError):
        combiner.submit(13)
    assert combiner.submit(7) == 7  # the next batch is written as usual
    assert calls == [[13], [7]]


def test_a_write_with_the_wrong_number_of_outcomes_is_an_error() -> None:
    combiner: Combiner[int, int] = Combiner(lambda items: [])
    with pytest.raises(RuntimeError, match="0 outcomes for a batch of 1"):
        combiner.submit(1)


def test_a_stopped_writer_answers_its_batch_and_hands_the_writing_on() -> None:
    """The caller writing a batch is stopped (gevent kills a greenlet with a
    BaseException): its batch-mates get WriterStopped, the next batch is written."""

    class Stop(BaseException):
        pass

    writes: list[list[int]] = []
    held = threading.Event()
    go = threading.Event()

    def write(items: Sequence[int]) -> list[int]:
        writes.append(list(items))
        if items[0] == 0:
            held.set()
            assert go.wait(10)
            raise Stop()
        return list(items)

    combiner = Combiner(write)
    got: dict[int, object] = {}

    def first() -> None:
        try:
            combiner.submit(0)
        except Stop as exc:
            got[0] = exc

    leader = threading.Thread(target=first)
    leader.start()
    assert held.wait(10)
    later = threading.Thread(target=lambda: got.update(submit_all(combiner, [1, 2])))
    later.start()
    while len(combiner._queued) < 2:
        threading.Event().wait(0.01)
    go.set()
    leader.join(10)
    later.join(10)
    assert isinstance(got[0], Stop)
    assert got[1] == 1 and got[2] == 2  # written by the next batch, not WriterStopped
    assert not any(isinstance(value, WriterStopped) for value in got.values())
    assert len(writes) == 2 and sorted(writes[1]) == [1, 2]


def test_many_callers_none_lost() -> None:
    """Hundreds of callers in waves, with a write that yields: every caller answered."""
    seen: list[int] = []

    def write(items: Sequence[int]) -> list[int]:
        threading.Event().wait(0.001)
        seen.extend(items)
        return [item + 1 for item in items]

    combiner = Combiner(write, limit=16)
    got = submit_all(combiner, list(range(400)))
    assert got == {n: n + 1 for n in range(400)}
    assert sorted(seen) == list(range(400))
    assert combiner.items == 400 and combiner.batches < 400


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Combiner(lambda items: list(items), limit=0)


WOKEN_TOGETHER = """
from gevent import monkey; monkey.patch_all()
import sys, threading, gevent
from orders.infra.combiner import Combiner

batches = []
def read(items):
    batches.append(len(items))
    gevent.sleep(0.001)  # a round trip
    return list(items)

combiner = Combiner(read, limit=500, gather=sys.argv[1] == "gather")
bell = threading.Event()
def stream(n):
    bell.wait()
    assert combiner.submit(n) == n
streams = [gevent.spawn(stream, n) for n in range(50)]
gevent.sleep(0)
bell.set()  # one wake-up rings every stream
gevent.joinall(streams, raise_error=True)
print(" ".join(map(str, batches)))
"""


def test_callers_woken_together_share_one_write_when_gathering() -> None:
    # 50 greenlets woken at once, under gevent as the web runs: the first caller would
    # write alone and the rest share a second write ...
    assert run_python(WOKEN_TOGETHER, "alone") == "1 49"
    # ... gathering, it yields first and every caller woken with it joins its write
    assert run_python(WOKEN_TOGETHER, "gather") == "50"
