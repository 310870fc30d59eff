"""A batch's slow outside work at once: each item's call on a caller of its own, the
items handed back in groups as their calls return.

A run of one job calls in place. A run of many hands each item to one of the
process's long-lived callers (threads; greenlets in a consumer of greenlets, whose
patched ``threading`` makes them so), so a batch waits as long as its slowest call,
not the sum of its calls, and the runner writes the items whose calls returned while
the others still wait: a group is what returned while the group before it was being
written. Callers live on, so what a call keeps per thread (the simulated gateway's
ledger connection, the circuit breaker's sibling) serves the next call.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class Callers:
    """At most ``most`` callers, started as calls need them; a call beyond them waits
    for the first to be free."""

    def __init__(self, most: int) -> None:
        self.most = max(most, 1)
        self._work: queue.Queue[Callable[[], None]] = queue.Queue()
        self._lock = threading.Lock()
        self._started = 0
        self._idle = 0

    def submit(self, work: Callable[[], None]) -> None:
        """Run ``work`` on a free caller (which must not raise)."""
        with self._lock:
            if self._idle > 0:
                self._idle -= 1  # that caller takes it
            elif self._started < self.most:
                self._started += 1
                name = f"caller-{self._started}"
                threading.Thread(target=self._serve, name=name, daemon=True).start()
        self._work.put(work)

    @property
    def started(self) -> int:
        return self._started

    def _serve(self) -> None:
        try:
            while True:
                work = self._work.get()
                try:
                    work()
                except Exception:  # a call's own errors are its item's outcome
                    log.exception("a caller's work raised")
                with self._lock:
                    self._idle += 1
        finally:  # interrupted (a consumer stopping): one caller fewer
            with self._lock:
                self._started -= 1


def in_groups(
    items: Sequence[T], call: Callable[[T], None], callers: Callers | None, gather: float = 0.0
) -> Iterator[list[T]]:
    """Call ``call`` for every item; yield the items in groups as their calls return,
    each item once: a group is what returned while the one before it was handled, and
    up to ``gather`` seconds after its first (sooner if every call returned). In
    place, one group, when there is one item or no ``callers``. ``call`` records its
    item's outcome and must not raise."""
    if len(items) < 2 or callers is None:
        for item in items:
            call(item)
        if items:
            yield list(items)
        return
    returned: queue.Queue[T] = queue.Queue()

    def run(item: T) -> None:
        try:
            call(item)
        finally:
            returned.put(item)

    for item in items:
        callers.submit(partial(run, item))
    left = len(items)
    while left:
        group = [returned.get()]
        until = time.monotonic() + gather
        while len(group) < left:
            wait = until - time.monotonic()
            try:
                group.append(returned.get(timeout=wait) if wait > 0 else returned.get_nowait())
            except queue.Empty:
                break
        left -= len(group)
        yield group
