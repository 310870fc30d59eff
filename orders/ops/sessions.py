"""Server-side dashboard sessions: revocable, with idle and absolute lifetimes.

The browser's signed cookie holds only a random id; ``ops_sessions`` holds its SHA-256,
who it belongs to and when it was last used. A request's session is looked up every
time, so deleting the row (logout, password change, account removal, expiry) ends it
at once, on every web worker. The caller commits.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from orders.config import Settings
from orders.db import utcnow
from orders.models import OpsSession, OpsUser
from orders.ops.accounts import Account, bootstrap_admin, bootstrap_credential

TOUCH_SECONDS = 60
"""``last_seen`` is written at most once a minute per session (not on every request)."""


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _limits(settings: Settings) -> tuple[timedelta, timedelta]:
    return (
        timedelta(minutes=settings.ops_session_idle_minutes),
        timedelta(hours=settings.ops_session_max_hours),
    )


def start_session(session: Session, settings: Settings, account: Account, ip: str) -> str:
    """Record a new session; returns the id for the cookie (never stored as is)."""
    now = utcnow()
    idle, longest = _limits(settings)
    session.execute(  # sweep the expired ones while we are here
        delete(OpsSession).where(
            or_(OpsSession.last_seen < now - idle, OpsSession.created_at < now - longest)
        )
    )
    token = secrets.token_urlsafe(32)
    session.add(
        OpsSession(
            id_hash=_hash(token),
            user_id=account.user_id,
            username=account.name,
            credential="" if account.user_id else bootstrap_credential(settings),
            created_at=now,
            last_seen=now,
            ip=ip[:64],
        )
    )
    return token


def resume_session(
    session: Session, settings: Settings, token: str, now: datetime | None = None
) -> Account | None:
    """The account of a live session, or None (and the row is gone) if it has ended."""
    if not token:
        return None
    row = session.get(OpsSession, _hash(token))
    if row is None:
        return None
    now = now or utcnow()
    idle, longest = _limits(settings)
    account = _owner(session, settings, row)
    if account is None or now - row.last_seen > idle or now - row.created_at > longest:
        session.delete(row)
        return None
    if (now - row.last_seen).total_seconds() >= TOUCH_SECONDS:
        row.last_seen = now
    return account


def _owner(session: Session, settings: Settings, row: OpsSession) -> Account | None:
    if row.user_id is not None:
        user = session.get(OpsUser, row.user_id)
        return Account(user.name, user.role, user.id) if user else None
    admin = bootstrap_admin(settings, row.username)
    shadowed = session.scalar(select(OpsUser.id).where(OpsUser.name == row.username))
    current = bootstrap_credential(settings)
    if admin is None or shadowed is not None or not current:
        return None
    return admin if hmac.compare_digest(row.credential, current) else None


def end_session(session: Session, token: str) -> None:
    if token:
        session.execute(delete(OpsSession).where(OpsSession.id_hash == _hash(token)))
