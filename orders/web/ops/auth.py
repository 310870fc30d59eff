"""Login, logout, the guard on every /ops route, and CSRF tokens for its POSTs."""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

from flask import abort, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from orders.ops.actions import Operator
from orders.ops.audit import LOGIN_WINDOW, audit, login_blocked
from orders.web.extensions import db, db_session, settings
from orders.web.ops import bp

USER_KEY = "ops_user"
CSRF_KEY = "ops_csrf"
OPEN_ENDPOINTS = {"ops.login"}


def csrf_token() -> str:
    token = session.get(CSRF_KEY)
    if not token:
        token = session[CSRF_KEY] = secrets.token_urlsafe(32)
    return str(token)


def current_operator() -> Operator:
    return Operator(str(session.get(USER_KEY, "")), request.remote_addr or "")


def _csrf_ok() -> bool:
    sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
    expected = session.get(CSRF_KEY) or ""
    return bool(expected) and hmac.compare_digest(str(sent), str(expected))


@bp.before_request
def guard() -> Response | None:
    if request.endpoint not in OPEN_ENDPOINTS and not session.get(USER_KEY):
        if request.method in ("GET", "HEAD"):
            return redirect(url_for("ops.login", next=request.full_path))
        abort(401, "log in to the ops dashboard first")
    if request.method not in ("GET", "HEAD", "OPTIONS") and not _csrf_ok():
        abort(400, "the CSRF token is missing or invalid; reload the page and try again")
    return None


@bp.context_processor
def inject() -> dict[str, object]:
    return {"csrf_token": csrf_token, "ops_user": session.get(USER_KEY)}


def safe_next(target: str | None, default: str = "ops.overview") -> str:
    """Only ever go back to a path on this dashboard."""
    if target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and parts.path.startswith("/ops"):
            return target
    return url_for(default)


def _credentials_match(username: str, password: str) -> bool:
    config = settings()
    user_ok = hmac.compare_digest(username.encode(), config.ops_username.encode())
    password_ok = hmac.compare_digest(password.encode(), config.ops_password.encode())
    return user_ok and password_ok


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | str | tuple[str, int, dict[str, str]]:
    next_url = request.values.get("next", "")
    if request.method == "GET":
        return render_template("ops/login.html", next=next_url, error=None)
    ip = request.remote_addr or ""
    if login_blocked(db_session(), ip):
        db.session.rollback()
        minutes = int(LOGIN_WINDOW.total_seconds() // 60)
        error = f"Too many failed logins from your address; try again in {minutes} minutes."
        page = render_template("ops/login.html", next=next_url, error=error)
        return page, 429, {"Retry-After": str(int(LOGIN_WINDOW.total_seconds()))}
    username = request.form.get("username", "")[:100]
    password = request.form.get("password", "")[:200]
    if not _credentials_match(username, password):
        audit(db_session(), username or "-", "login_failed", "", "", ip)
        db.session.commit()
        page = render_template("ops/login.html", next=next_url, error="Wrong username or password.")
        return page, 401, {}
    session.clear()
    session[USER_KEY] = username
    session[CSRF_KEY] = secrets.token_urlsafe(32)
    audit(db_session(), username, "login", "", "", ip)
    db.session.commit()
    return redirect(safe_next(next_url))


@bp.post("/logout")
def logout() -> Response:
    audit(db_session(), current_operator().name, "logout", "", "", current_operator().ip)
    db.session.commit()
    session.clear()
    return redirect(url_for("ops.login"))
