"""Operator accounts: add, remove, list, change a password, and check a login.

Accounts live in ``ops_users`` with a scrypt hash. ``OPS_USERNAME``/``OPS_PASSWORD``,
when set, are one more admin (the bootstrap admin, for a first login or a lost
database); an account of the same name wins over it. Changing a password or removing
an account ends its sessions. Every change is audited; the caller commits.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from orders.config import Settings
from orders.db import utcnow
from orders.errors import ShopError
from orders.models import OpsRole, OpsSession, OpsUser
from orders.ops.audit import audit
from orders.ops.passwords import hash_password, spend_verify_time, verify_password
from orders.production import password_weakness

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")


class AccountRefused(
    ShopError, code="account_refused", status=422, title="Account change refused"
): ...


@dataclass(frozen=True)
class Account:
    """Who is logged in: an ``ops_users`` row, or the bootstrap admin (``user_id`` None)."""

    name: str
    role: OpsRole
    user_id: int | None = None

    @property
    def can_act(self) -> bool:
        return self.role is OpsRole.ADMIN


def _check_password(password: str) -> None:
    weakness = password_weakness(password)
    if weakness:
        raise AccountRefused(f"the password {weakness}")


def _user(session: Session, name: str) -> OpsUser:
    user = session.scalar(select(OpsUser).where(OpsUser.name == name))
    if user is None:
        raise AccountRefused(f"no operator account {name!r}")
    return user


def add_user(session: Session, name: str, role: OpsRole, password: str, actor: str) -> OpsUser:
    if not NAME.match(name):
        raise AccountRefused(
            "a name is 1-100 letters, digits and . _ @ - (starting with a letter or digit)"
        )
    if session.scalar(select(OpsUser.id).where(OpsUser.name == name)) is not None:
        raise AccountRefused(f"operator account {name!r} already exists")
    _check_password(password)
    now = utcnow()
    user = OpsUser(
        name=name,
        role=role,
        password_hash=hash_password(password),
        created_at=now,
        password_changed_at=now,
    )
    session.add(user)
    session.flush()
    audit(session, actor, "user_add", name, role.value)
    return user


def end_sessions_of(session: Session, user_id: int) -> int:
    result = session.execute(delete(OpsSession).where(OpsSession.user_id == user_id))
    return int(result.rowcount)  # type: ignore[attr-defined]


def set_password(session: Session, name: str, password: str, actor: str) -> int:
    """Set a new password and end every session of the account; returns how many."""
    user = _user(session, name)
    _check_password(password)
    user.password_hash = hash_password(password)
    user.password_changed_at = utcnow()
    ended = end_sessions_of(session, user.id)
    audit(session, actor, "user_set_password", name, f"{ended} session(s) ended")
    return ended


def remove_user(session: Session, name: str, actor: str) -> int:
    """Remove the account and end its sessions; returns how many sessions ended."""
    user = _user(session, name)
    ended = end_sessions_of(session, user.id)
    session.delete(user)
    audit(session, actor, "user_remove", name, f"{ended} session(s) ended")
    return ended


def list_users(session: Session) -> list[OpsUser]:
    return list(session.scalars(select(OpsUser).order_by(OpsUser.name)))


def bootstrap_credential(settings: Settings) -> str:
    """A keyed hash of the bootstrap admin's credentials (stored with its sessions, so a
    changed or removed ``OPS_PASSWORD`` ends them); empty when there is none."""
    if not settings.ops_password:
        return ""
    message = f"{settings.ops_username}\0{settings.ops_password}".encode()
    return hmac.new(settings.secret_key.encode(), message, hashlib.sha256).hexdigest()


def bootstrap_admin(settings: Settings, name: str) -> Account | None:
    if settings.ops_password and name == settings.ops_username:
        return Account(name, OpsRole.ADMIN, None)
    return None


def authenticate(session: Session, settings: Settings, name: str, password: str) -> Account | None:
    """The account these credentials open, or None. An empty password never matches."""
    user = session.scalar(select(OpsUser).where(OpsUser.name == name)) if name else None
    if user is not None:
        if password and verify_password(password, user.password_hash):
            return Account(user.name, user.role, user.id)
        return None
    spend_verify_time(password)  # every answer costs one scrypt: no timing oracle
    admin = bootstrap_admin(settings, name)
    if admin is not None and settings.ops_password:
        if hmac.compare_digest(password.encode(), settings.ops_password.encode()):
            return admin
    return None
