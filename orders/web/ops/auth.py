"""Login, logout, the guard on every /ops route, roles, and CSRF tokens for its POSTs.

A login checks the throttle first (a slot per address and per account, taken before
the password is checked), then the accounts (orders/ops/accounts.py), and
starts a server-side session (sessions.py): the signed cookie holds only its random
id. The guard resumes that session on every request, so logout, a password change or
an account's removal ends it at once. A viewer sees every page; every POST but logout
needs an admin (403).
"""

from __future__ import annotations

import hmac
import logging
import secrets
from urllib.parse import urlsplit

from flask import (
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.wrappers import Response

from orders.ops.accounts import Account, authenticate
from orders.ops.actions import Operator
from orders.ops.audit import audit
from orders.ops.login_throttle import LoginThrottle
from orders.ops.sessions import end_session, resume_session, start_session
from orders.web.extensions import commit, db, db_session, settings
from orders.web.ops import bp

SESSION_KEY = "ops_sid"
CSRF_KEY = "ops_csrf"
OPEN_ENDPOINTS = {"ops.login"}
VIEWER_POSTS = {"ops.logout"}
READ_ONLY = ("GET", "HEAD", "OPTIONS")
log = logging.getLogger(__name__)


def csrf_token() -> str:
    token = session.get(CSRF_KEY)
    if not token:
        token = session[CSRF_KEY] = secrets.token_urlsafe(32)
    return str(token)


def current_account() -> Account | None:
    account: Account | None = g.get("ops_account")
    return account


def current_operator() -> Operator:
    account = current_account()
    return Operator(account.name if account else "", request.remote_addr or "")


def _csrf_ok() -> bool:
    sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
    expected = session.get(CSRF_KEY) or ""
    return bool(expected) and hmac.compare_digest(str(sent), str(expected))


def _resume() -> Account | None:
    token = str(session.get(SESSION_KEY) or "")
    if not token:
        return None
    account = resume_session(db_session(), settings(), token)
    commit()  # the once-a-minute touch, or the ended session's removal
    if account is None:
        session.pop(SESSION_KEY, None)
    return account


@bp.before_request
def guard() -> Response | None:
    account = g.ops_account = _resume()
    if request.endpoint not in OPEN_ENDPOINTS and account is None:
        if request.method in ("GET", "HEAD"):
            return redirect(url_for("ops.login", next=request.full_path))
        abort(401, "log in to the ops dashboard first")
    if request.method in READ_ONLY:
        return None
    if not _csrf_ok():
        abort(400, "the CSRF token is missing or invalid; reload the page and try again")
    exempt = OPEN_ENDPOINTS | VIEWER_POSTS
    if request.endpoint not in exempt and account is not None and not account.can_act:
        abort(403, "this account is a viewer: it sees every page and acts on nothing")
    return None


@bp.context_processor
def inject() -> dict[str, object]:
    account = current_account()
    return {
        "csrf_token": csrf_token,
        "ops_user": account.name if account else None,
        "ops_role": account.role.value if account else None,
        "can_act": bool(account and account.can_act),
    }


def safe_next(target: str | None, default: str = "ops.overview") -> str:
    """Only ever go back to a path on this dashboard."""
    if target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and parts.path.startswith("/ops"):
            return target
    return url_for(default)


def login_throttle() -> LoginThrottle:
    throttle: LoginThrottle | None = current_app.extensions.get("shop.login_throttle")
    if throttle is None:
        throttle = LoginThrottle(settings(), lambda: db.engine)
        current_app.extensions["shop.login_throttle"] = throttle
    return throttle


def _wait_text(seconds: int) -> str:
    return f"{seconds} seconds" if seconds < 120 else f"{(seconds + 59) // 60} minutes"


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | str | tuple[str, int, dict[str, str]]:
    next_url = request.values.get("next", "")
    if request.method == "GET":
        return render_template("ops/login.html", next=next_url, error=None)
    ip = request.remote_addr or ""
    username = request.form.get("username", "")[:100]
    password = request.form.get("password", "")[:200]
    wait = login_throttle().attempt(ip, username)
    if wait is not None:
        log.warning("login throttled: %s from %s", username[:40] or "-", ip)
        error = f"Too many login attempts; try again in {_wait_text(wait)}."
        page = render_template("ops/login.html", next=next_url, error=error)
        return page, 429, {"Retry-After": str(wait)}
    account = authenticate(db_session(), settings(), username, password)
    if account is None:
        audit(db_session(), username or "-", "login_failed", "", "", ip)
        commit()
        page = render_template("ops/login.html", next=next_url, error="Wrong username or password.")
        return page, 401, {}
    end_session(db_session(), str(session.get(SESSION_KEY) or ""))
    session.clear()
    session[SESSION_KEY] = start_session(db_session(), settings(), account, ip)
    session[CSRF_KEY] = secrets.token_urlsafe(32)
    audit(db_session(), account.name, "login", account.role.value, "", ip)
    commit()
    login_throttle().succeeded(ip, username)  # after the commit: its own transaction
    return redirect(safe_next(next_url))


@bp.post("/logout")
def logout() -> Response:
    who = current_operator()
    end_session(db_session(), str(session.get(SESSION_KEY) or ""))
    audit(db_session(), who.name, "logout", "", "", who.ip)
    commit()
    session.clear()
    return redirect(url_for("ops.login"))
