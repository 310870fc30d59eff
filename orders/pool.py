"""A consumer's database pool under greenlets: started jobs first.

A consumer runs hundreds of jobs in flight on a few connections (``WORKER_DB_POOL``).
A job's first transaction claims it and starts its lease; its later ones (enter the
step, record the outcome) must not queue behind hundreds of jobs not yet claimed:
when the database or the CPU is the bottleneck, a plain first-come pool lets the
claims pile in ahead of them, the started jobs' leases run out while they wait, the
sweeper re-drives them, and the work done is thrown away (seen on a loaded machine:
300 charges, 102 failed after five lease expiries). Here a job's first checkout
waits in line; every later one goes ahead of it. Unclaimed work waits for a
connection; leased work finishes.

Greenlets only (:mod:`orders.consumer` patches ``threading``, so the locals and
events below are a greenlet's): the thread workers of the SQLite mode keep SQLAlchemy's
own pool.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

from sqlalchemy import exc
from sqlalchemy.pool import ConnectionPoolEntry, QueuePool

_job = threading.local()  # greenlet-local once patched


def job_started() -> None:
    """A new job begins on this greenlet: its next checkout is its first (the claim)."""
    _job.checkouts = 0


class PriorityGate:
    """``size`` slots; a waiter marked urgent is handed the next free slot before any
    other waiter. Not thread-safe: for greenlets, which switch only where they block."""

    def __init__(self, size: int) -> None:
        self.free = size
        self.waiting: tuple[deque[threading.Event], deque[threading.Event]] = (deque(), deque())

    def acquire(self, urgent: bool, timeout: float | None) -> bool:
        if self.free > 0 and not (self.waiting[0] or self.waiting[1]):
            self.free -= 1
            return True
        handed = threading.Event()
        line = self.waiting[0 if urgent else 1]
        line.append(handed)
        if handed.wait(timeout) or handed.is_set():
            return True  # release() handed this slot over (perhaps as the wait ran out)
        line.remove(handed)
        return False

    def release(self) -> None:
        for line in self.waiting:
            if line:
                line.popleft().set()  # the slot goes straight to the first in line
                return
        self.free += 1


class StartedJobsFirstPool(QueuePool):
    """:class:`QueuePool` behind a :class:`PriorityGate` as wide as the pool: a
    greenlet's checkouts after its job's first go ahead of the first ones."""

    def __init__(self, creator: Any, pool_size: int = 5, max_overflow: int = 10, **kw: Any):
        super().__init__(creator, pool_size=pool_size, max_overflow=max_overflow, **kw)
        self._gate = PriorityGate(pool_size + max(max_overflow, 0))

    def _do_get(self) -> ConnectionPoolEntry:
        if getattr(_job, "getting", False):  # QueuePool's own retry: already admitted
            return super()._do_get()
        urgent = getattr(_job, "checkouts", 0) > 0
        _job.checkouts = getattr(_job, "checkouts", 0) + 1
        if not self._gate.acquire(urgent, self._timeout):
            raise exc.TimeoutError(
                f"pool of {self.size()} connection(s): none free after {self._timeout:g} s",
                code="3o7r",
            )
        _job.getting = True
        try:
            return super()._do_get()
        except BaseException:
            self._gate.release()
            raise
        finally:
            _job.getting = False

    def _do_return_conn(self, record: ConnectionPoolEntry) -> None:
        try:
            super()._do_return_conn(record)
        finally:
            self._gate.release()
