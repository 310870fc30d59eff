"""Pause and resume a queue.

A paused queue's consumers leave its jobs waiting: the task sees the pause (checked at
most every ``PAUSE_CACHE_SECONDS`` per process) and returns without claiming, so the
job row stays ``queued``. On resume every waiting job of the queue is sent again.
"""

from __future__ import annotations

import threading
import time

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from orders.models import Job, QueuePause

PAUSE_CACHE_SECONDS = 2.0


class PauseFlags:
    """A per-process, short-lived cache of the paused queues (read from the database)."""

    def __init__(self, sessions: sessionmaker[Session], ttl: float = PAUSE_CACHE_SECONDS) -> None:
        self.sessions = sessions
        self.ttl = ttl
        self._lock = threading.Lock()
        self._paused: frozenset[str] = frozenset()
        self._read_at = float("-inf")

    def paused(self) -> frozenset[str]:
        with self._lock:
            if time.monotonic() - self._read_at >= self.ttl:
                try:
                    with self.sessions() as session:
                        self._paused = frozenset(session.scalars(select(QueuePause.queue)))
                        session.commit()
                except Exception:  # database away: keep the last answer
                    return self._paused
                self._read_at = time.monotonic()
            return self._paused


def job_queue(session: Session, job_id: str) -> str | None:
    return session.scalar(select(Job.queue).where(Job.id == job_id))
