"""The audit log: every dashboard action and account change, with who did it, and
every login and failed login (the login throttle itself counts elsewhere:
login_throttle.py)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from orders.db import utcnow
from orders.models import AuditLog


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
