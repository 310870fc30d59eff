"""Durable work: every queued step is a row here before it is a Huey message.

Huey delivers at most once, so a job row carries the lease, the attempt count and
the error; the sweeper re-drives rows whose lease expired or that never reached
the broker. Emails are recorded before they are sent, and sent once.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from orders.db import Base, utcnow
from orders.domain.statuses import EmailStatus, JobStatus
from orders.models.types import enum_column

WAITING_SQL = "status IN ('queued', 'scheduled')"
"""A job waiting to be claimed, as SQL (literal: a partial index's predicate)."""


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_status_queue", "status", "queue"),
        Index("ix_jobs_queue_finished", "queue", "finished_at"),
        # a batch's claim: the oldest waiting jobs of a type (orders.pipeline.leases)
        Index(
            "ix_jobs_waiting",
            "type",
            "created_at",
            postgresql_where=text(WAITING_SQL),
            sqlite_where=text(WAITING_SQL),
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    type: Mapped[str] = mapped_column(String(40))
    queue: Mapped[str] = mapped_column(String(20))
    priority: Mapped[int]
    status: Mapped[JobStatus] = mapped_column(enum_column(JobStatus))
    checkout_id: Mapped[int | None] = mapped_column(ForeignKey("checkouts.id"), index=True)
    cart_id: Mapped[str | None] = mapped_column(String(64))
    email_id: Mapped[int | None] = mapped_column(ForeignKey("emails.id"))
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"))
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int]
    run_at: Mapped[datetime | None]
    lease_until: Mapped[datetime | None]
    worker: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    enqueued_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(500))
    traceback: Mapped[str | None] = mapped_column(Text)
    # the W3C trace context its runs continue (orders.infra.tracing); None: untraced
    trace_context: Mapped[str | None] = mapped_column(String(600))


class Email(Base):
    __tablename__ = "emails"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    dedupe_key: Mapped[str] = mapped_column(String(120), unique=True)
    checkout_id: Mapped[int | None] = mapped_column(ForeignKey("checkouts.id"), index=True)
    cart_id: Mapped[str | None] = mapped_column(String(64))
    to_addr: Mapped[str] = mapped_column(String(254), index=True)
    subject: Mapped[str] = mapped_column(String(200))
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text)
    status: Mapped[EmailStatus] = mapped_column(enum_column(EmailStatus))
    message_id: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
