"""Consumer heartbeats: each consumer process writes its row every few seconds."""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from orders.db import utcnow
from orders.infra.upsert import upsert
from orders.models import WorkerHeartbeat
from orders.models.tables import HEARTBEATS

log = logging.getLogger(__name__)

MISSED_BEATS = 3
"""A worker is dead after this many missed heartbeats."""
FORGET_AFTER = timedelta(days=1)


@dataclass(frozen=True)
class WorkerIdentity:
    hostname: str
    pid: int
    queue: str
    concurrency: int

    @property
    def id(self) -> str:
        return f"{self.hostname}:{self.pid}:{self.queue}"[:160]


def this_process(queue: str, concurrency: int) -> WorkerIdentity:
    return WorkerIdentity(socket.gethostname()[:120], os.getpid(), queue, concurrency)


def beat(session: Session, worker: WorkerIdentity) -> None:
    """Upsert this worker's row, forget workers gone for a day."""
    now = utcnow()
    upsert(
        session,
        HEARTBEATS,
        {
            "id": worker.id,
            "hostname": worker.hostname,
            "pid": worker.pid,
            "queue": worker.queue,
            "concurrency": worker.concurrency,
            "started_at": now,
            "last_seen": now,
        },
        ("id",),
        replace=("last_seen", "concurrency"),
    )
    session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.last_seen < now - FORGET_AFTER))


def forget(session: Session, worker: WorkerIdentity) -> None:
    """A graceful stop removes the row at once."""
    session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.id == worker.id))


def is_alive(last_seen: datetime, interval_seconds: float, now: datetime | None = None) -> bool:
    now = now or utcnow()
    return last_seen >= now - timedelta(seconds=interval_seconds * MISSED_BEATS)


def list_workers(session: Session, interval_seconds: float) -> list[dict[str, Any]]:
    now = utcnow()
    rows = session.scalars(
        select(WorkerHeartbeat).order_by(WorkerHeartbeat.queue, WorkerHeartbeat.id)
    )
    return [
        {
            "id": row.id,
            "hostname": row.hostname,
            "pid": row.pid,
            "queue": row.queue,
            "concurrency": row.concurrency,
            "startedAt": row.started_at.isoformat() + "Z",
            "lastSeen": row.last_seen.isoformat() + "Z",
            "lastSeenSeconds": round((now - row.last_seen).total_seconds(), 1),
            "alive": is_alive(row.last_seen, interval_seconds, now),
        }
        for row in rows
    ]
