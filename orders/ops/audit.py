"""The audit log: every dashboard action, with who did it; failed logins for rate limits."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from orders.db import utcnow
from orders.models import AuditLog

LOGIN_FAILURES_ALLOWED = 5
LOGIN_WINDOW = timedelta(minutes=5)


def audit(
    session: Session, actor: str, action: str, target: str = "", detail: str = "", ip: str = ""
) -> AuditLog:
    """Add one audit row (the caller commits with the action's own changes)."""
    row = AuditLog(
        at=utcnow(),
        actor=actor[:100],
        action=action[:40],
        target=target[:200],
        detail=detail,
        ip=ip[:64],
    )
    session.add(row)
    return row


def recent_audit(session: Session, limit: int = 200) -> list[AuditLog]:
    return list(session.scalars(select(AuditLog).order_by(AuditLog.id.desc()).limit(limit)))


def login_blocked(session: Session, ip: str) -> bool:
    """True when this address failed to log in too often in the last few minutes."""
    failures = session.scalar(
        select(func.count())
        .select_from(AuditLog)
        .where(
            AuditLog.action == "login_failed",
            AuditLog.ip == ip[:64],
            AuditLog.at >= utcnow() - LOGIN_WINDOW,
        )
    )
    return (failures or 0) >= LOGIN_FAILURES_ALLOWED
