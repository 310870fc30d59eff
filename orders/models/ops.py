"""The operator's tables: worker heartbeats, per-minute job counters, audit log, pauses,
operator accounts, their sessions, and the login throttle's counters.

``job_stats_minutely`` is written when a job attempt ends (in the same transaction as
the job row), so throughput and latency history survive restarts and do not change
when retention deletes old job rows; ``checkout_stats_minutely`` likewise when a
checkout ends. Their ``*_total`` tables hold the rows older than a few minutes summed
(:mod:`orders.pipeline.folds`), so an all-time read costs a few rows, not years.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from orders.db import Base, utcnow
from orders.models.types import enum_column

LATENCY_BUCKETS_MS = (50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000)
"""Upper bounds of the stored latency histogram; a last bucket holds everything slower."""

BUCKET_COLUMNS = tuple(f"le_{ms}" for ms in LATENCY_BUCKETS_MS) + ("le_inf",)


class WorkerHeartbeat(Base):
    """One consumer process, seen every ``HEARTBEAT_SECONDS``."""

    __tablename__ = "worker_heartbeats"

    id: Mapped[str] = mapped_column(String(160), primary_key=True)  # host:pid:queue
    hostname: Mapped[str] = mapped_column(String(120))
    pid: Mapped[int]
    queue: Mapped[str] = mapped_column(String(20), index=True)
    concurrency: Mapped[int]
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class HistogramCounts:
    """Columns of a stored latency histogram: how many, their total, and per bucket."""

    count: Mapped[int] = mapped_column(default=0)
    total_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    le_50: Mapped[int] = mapped_column(default=0)
    le_100: Mapped[int] = mapped_column(default=0)
    le_250: Mapped[int] = mapped_column(default=0)
    le_500: Mapped[int] = mapped_column(default=0)
    le_1000: Mapped[int] = mapped_column(default=0)
    le_2500: Mapped[int] = mapped_column(default=0)
    le_5000: Mapped[int] = mapped_column(default=0)
    le_10000: Mapped[int] = mapped_column(default=0)
    le_30000: Mapped[int] = mapped_column(default=0)
    le_inf: Mapped[int] = mapped_column(default=0)


class JobStatMinute(HistogramCounts, Base):
    """Counters per minute, queue, job type and outcome, with a latency histogram."""

    __tablename__ = "job_stats_minutely"
    __table_args__ = (
        UniqueConstraint("minute", "queue", "type", "outcome", name="uq_job_stats_minute_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    minute: Mapped[datetime] = mapped_column(index=True)
    queue: Mapped[str] = mapped_column(String(20))
    type: Mapped[str] = mapped_column(String(40))
    outcome: Mapped[str] = mapped_column(String(16))  # completed/failed/discarded/retried


class JobStatTotal(HistogramCounts, Base):
    """``job_stats_minutely`` summed up to ``stat_folds.folded_until`` (all-time reads)."""

    __tablename__ = "job_stats_total"

    queue: Mapped[str] = mapped_column(String(20), primary_key=True)
    type: Mapped[str] = mapped_column(String(40), primary_key=True)
    outcome: Mapped[str] = mapped_column(String(16), primary_key=True)


class CheckoutStatMinute(HistogramCounts, Base):
    """Checkouts that ended per minute, by outcome and error code, with a histogram of
    their placed-to-final time. ``outcome``: completed, failed, or requeued (a failed
    checkout sent back to the queue with another card); ``code``: '' unless failed."""

    __tablename__ = "checkout_stats_minutely"
    __table_args__ = (
        UniqueConstraint("minute", "outcome", "code", name="uq_checkout_stats_minute_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    minute: Mapped[datetime] = mapped_column(index=True)
    outcome: Mapped[str] = mapped_column(String(16))
    code: Mapped[str] = mapped_column(String(64), default="")


class CheckoutStatTotal(HistogramCounts, Base):
    """``checkout_stats_minutely`` summed up to ``stat_folds.folded_until``."""

    __tablename__ = "checkout_stats_total"

    outcome: Mapped[str] = mapped_column(String(16), primary_key=True)
    code: Mapped[str] = mapped_column(String(64), primary_key=True)


class StatFold(Base):
    """How far a per-minute counter table has been summed into its totals table."""

    __tablename__ = "stat_folds"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)  # the minutely table
    folded_until: Mapped[datetime]


class AuditLog(Base):
    """Who did what from the dashboard (and failed logins, for rate limiting)."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_action_ip_at", "action", "ip", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(40))
    target: Mapped[str] = mapped_column(String(200), default="")
    detail: Mapped[str] = mapped_column(Text, default="")
    ip: Mapped[str] = mapped_column(String(64), default="")


class QueuePause(Base):
    """A row here pauses the queue: its consumers leave its jobs waiting."""

    __tablename__ = "queue_pauses"

    queue: Mapped[str] = mapped_column(String(20), primary_key=True)
    paused_by: Mapped[str] = mapped_column(String(100))
    paused_at: Mapped[datetime] = mapped_column(default=utcnow)


class OpsRole(StrEnum):
    """An admin acts; a viewer sees every page and acts on nothing."""

    ADMIN = "admin"
    VIEWER = "viewer"


class OpsUser(Base):
    """An operator account (``flask ops user add``); the password as a scrypt hash."""

    __tablename__ = "ops_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[OpsRole] = mapped_column(enum_column(OpsRole))
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    password_changed_at: Mapped[datetime] = mapped_column(default=utcnow)


class OpsSession(Base):
    """A logged-in dashboard session. The browser's signed cookie holds a random id;
    only its SHA-256 is stored, so a copy of this table logs nobody in. Deleting the
    row ends the session (logout, password change, account removal, expiry)."""

    __tablename__ = "ops_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    # None: the bootstrap admin from OPS_USERNAME/OPS_PASSWORD (no row in ops_users)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("ops_users.id", ondelete="CASCADE"), index=True
    )
    username: Mapped[str] = mapped_column(String(100))
    # The bootstrap admin's credentials when it logged in (a keyed hash): a changed
    # OPS_PASSWORD ends its sessions. Empty for accounts.
    credential: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(default=utcnow)
    ip: Mapped[str] = mapped_column(String(64), default="")


class LoginCounter(Base):
    """Login attempts per key (an address or an account) in a fixed window: the login
    throttle's store when Redis is not configured or not reachable. One atomic upsert
    per attempt, so concurrent attempts each see their own count."""

    __tablename__ = "login_counters"

    key: Mapped[str] = mapped_column(String(120), primary_key=True)
    window_start: Mapped[datetime]
    count: Mapped[int]
