"""A batch's calls at once (orders.pipeline.calls): each item on a caller, the items
handed back in groups as their calls return, every item exactly once."""

from __future__ import annotations

import threading

import pytest

from orders.pipeline.calls import Callers, in_groups


def test_one_item_or_no_callers_calls_in_place_in_order():
    seen = []
    groups = list(in_groups([1, 2, 3], seen.append, None))
    assert groups == [[1, 2, 3]] and seen == [1, 2, 3]
    assert list(in_groups([7], seen.append, Callers(4))) == [[7]]
    assert list(in_groups([], seen.append, Callers(4))) == []


def test_the_items_whose_calls_returned_come_back_while_a_slow_one_still_waits():
    release = threading.Event()
    callers = Callers(8)

    def call(item: int) -> None:
        if item == 0:  # sequential calls would never get past this one
            assert release.wait(10), "the others were not handed back first"

    groups = []
    for group in in_groups(list(range(5)), call, callers):
        groups.append(sorted(group))
        if 0 not in group and sum(len(g) for g in groups) == 4:
            release.set()  # the four quick ones are back: let the slow one return
    assert release.is_set()
    assert sorted(item for group in groups for item in group) == [0, 1, 2, 3, 4]
    assert groups[-1] == [0]


def test_callers_are_reused_and_bounded():
    callers = Callers(3)
    for _ in range(4):
        assert sum(len(g) for g in in_groups(list(range(10)), lambda _i: None, callers)) == 10
    assert 1 <= callers.started <= 3  # never more than asked for, kept between batches


def test_callers_keep_their_thread_for_the_next_call():
    callers = Callers(2)
    names: set[str] = set()

    def call(_item: int) -> None:
        names.add(threading.current_thread().name)

    for _ in range(5):
        list(in_groups([1, 2], call, callers))
    assert names <= {"caller-1", "caller-2"}  # what a call keeps per thread serves the next


def test_a_group_gathers_what_returns_within_the_window_after_its_first():
    callers = Callers(8)
    first_back = threading.Event()

    def call(item: int) -> None:
        if item == 0:
            first_back.set()  # back at once
        elif item in (1, 2):  # back a moment after the first: gathered with it
            assert first_back.wait(10)
            threading.Event().wait(0.1)
        else:
            threading.Event().wait(2)  # back long after the window

    groups = [sorted(g) for g in in_groups([0, 1, 2, 3], call, callers, gather=0.5)]
    assert groups == [[0, 1, 2], [3]]


@pytest.mark.timeout(30)
def test_a_group_ends_as_soon_as_every_call_returned():
    callers = Callers(8)
    groups = list(in_groups([0, 1, 2], lambda _i: None, callers, gather=60))
    assert sorted(item for g in groups for item in g) == [0, 1, 2]  # no 60 s wait (timeout)
