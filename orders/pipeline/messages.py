"""How jobs travel as broker messages: grouped when their type batches; a moment to
gather more when they come close together; and the jobs this process runs or
completed (a late message of one of them costs no statement)."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence

from orders.config import Settings
from orders.pipeline.jobs import JobRef
from orders.pipeline.jobtypes import JOB_TYPES


def message_groups(settings: Settings, refs: Sequence[JobRef]) -> list[tuple[list[str], JobRef]]:
    """How ``refs`` go to the broker: (the ids a message carries, the ref it is sent
    as), in order. Jobs of a type that batches, with the same delay, share a message,
    ``PIPELINE_BATCH`` at most; every other job has its own."""
    messages: list[tuple[list[str], JobRef]] = []
    open_: dict[tuple[str, float], list[str]] = {}
    for job in refs:
        key = (job.type, job.delay)
        ids = open_.get(key)
        if ids is not None and len(ids) < settings.pipeline_batch:
            ids.append(job.id)
            continue
        ids = [job.id]
        messages.append((ids, job))
        if JOB_TYPES[job.type].batch_size(settings) > 1:
            open_[key] = ids
    return messages


class _Recent:
    """Ids of the jobs this process completed, the latest ``size`` of them: a later
    message of one of them (its own, sent before a batch took it) is moot, and is
    dropped without a statement. Only completed jobs are kept: they never run again,
    so a job retried (a new message, the same id) is never mistaken for one."""

    def __init__(self, size: int = 20_000) -> None:
        self._lock = threading.Lock()
        self._order: deque[str] = deque()
        self._ids: set[str] = set()
        self.size = size

    def add(self, job_ids: Sequence[str]) -> None:
        with self._lock:
            for job_id in job_ids:
                if job_id not in self._ids:
                    self._ids.add(job_id)
                    self._order.append(job_id)
            while len(self._order) > self.size:
                self._ids.discard(self._order.popleft())

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._ids


COMPLETED_HERE = _Recent()


class _Running:
    """Ids of the jobs a run of this process has claimed and not yet finished: a
    message of one of them (its own, sent before a batch took it) is moot, since that
    run completes it or sends it again (a retry's new message comes after the run).
    Also what bounds a batch: the jobs a consumer holds at once, counted whether they
    came as messages or with a batch (a consumer runs one queue)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids: set[str] = set()
        self._reserved = 0

    def reserve(self, limit: int, wanted: int) -> int:
        """Room for up to ``wanted`` more jobs while at most ``limit`` are held (those
        running and those reserved by claims under way); :meth:`settle` after the claim."""
        with self._lock:
            room = max(min(wanted, limit - len(self._ids) - self._reserved), 0)
            self._reserved += room
            return room

    def settle(self, reserved: int, claimed: Sequence[str]) -> None:
        """A claim that reserved ``reserved`` took ``claimed``: they run here now."""
        with self._lock:
            self._reserved -= reserved
            self._ids.update(claimed)

    def discard(self, job_ids: Sequence[str]) -> None:
        with self._lock:
            self._ids.difference_update(job_ids)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._ids


RUNNING_HERE = _Running()


class _Gathering:
    """When a type's messages come close together, each waits a moment before its
    claim: the first to claim then takes the jobs of the others (the oldest waiting),
    which find theirs handled here and cost no statement. One claim and one write for
    many jobs cost a consumer far less than one each (a lone job's claim, write and
    wake-ups are most of its work). A message that comes alone (none of its type in
    the last ``window``) runs at once: a quiet shop adds no delay."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}

    def wait(self, job_type: str, window: float) -> None:
        """Wait ``window`` seconds if a message of ``job_type`` came in the last ``window``."""
        if window <= 0:
            return
        now = time.monotonic()
        with self._lock:
            previous = self._last.get(job_type)
            self._last[job_type] = now
        if previous is not None and now - previous < window:
            time.sleep(window)


GATHERING = _Gathering()


def handled_here(job_ids: Sequence[str]) -> bool:
    """Whether a run of this process completed or is running every one of ``job_ids``."""
    return bool(job_ids) and all(
        job_id in RUNNING_HERE or job_id in COMPLETED_HERE for job_id in job_ids
    )
