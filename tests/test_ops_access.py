"""Every /ops route needs a login; every /ops POST needs the session's CSRF token."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.ops_support import csrf_from, login, token
from tests.support import RecordingDispatch


def _ops_rules() -> list[tuple[str, str, str]]:
    from app import create_app

    app = create_app(
        {"database_url": "sqlite://", "data_dir": Path("/tmp"), "DISPATCH": RecordingDispatch()}
    )
    rules = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/ops") or rule.endpoint == "ops.login":
            continue
        path = re.sub(
            r"<(?:int:)?[^>]+>", lambda m: "1" if "int:" in m.group(0) else "x1", rule.rule
        )
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            rules.append((rule.endpoint, method, path))
    return rules


RULES = _ops_rules()
POSTS = [r for r in RULES if r[1] == "POST"]


def test_the_url_map_has_ops_pages_and_actions():
    endpoints = {endpoint for endpoint, _, _ in RULES}
    assert {"ops.overview", "ops.stream", "ops.retry_job", "ops.reset_breaker"} <= endpoints
    assert len(POSTS) >= 8


@pytest.mark.parametrize(
    ("endpoint", "method", "path"), RULES, ids=[f"{m} {p}" for _, m, p in RULES]
)
def test_unauthenticated_requests_are_refused(client, endpoint, method, path):
    response = client.open(path, method=method)
    if method == "GET":
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/ops/login")
    else:
        assert response.status_code == 401
    assert b"csrf_token" not in response.data or endpoint == "ops.login"


@pytest.mark.parametrize(("endpoint", "method", "path"), POSTS, ids=[p for _, _, p in POSTS])
def test_posts_without_the_csrf_token_are_refused(client, endpoint, method, path):
    assert login(client).status_code == 302
    response = client.post(path, data={"csrf_token": "forged"})
    assert response.status_code == 400
    assert client.post(path).status_code == 400


def test_login_without_csrf_token_is_refused(client):
    response = client.post("/ops/login", data={"username": "ops", "password": "ops-dev-password"})
    assert response.status_code == 400


def test_login_sets_a_safe_session_cookie_and_logout_ends_it(client):
    response = login(client)
    assert response.status_code == 302 and response.headers["Location"] == "/ops/"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert client.get("/ops/").status_code == 200
    assert client.post("/ops/logout", data={"csrf_token": token(client)}).status_code == 302
    assert client.get("/ops/").status_code == 302


def test_wrong_password_is_refused_and_failed_logins_are_rate_limited(client):
    for _ in range(5):
        assert login(client, password="wrong").status_code == 401
    assert login(client, username="nobody").status_code == 429  # even a right password waits
    response = login(client)
    assert response.status_code == 429 and "Retry-After" in response.headers


def test_login_only_redirects_inside_the_dashboard(client):
    page = client.get("/ops/login?next=https://evil.example/")
    data = {
        "username": "ops",
        "password": "ops-dev-password",
        "csrf_token": csrf_from(page.get_data(as_text=True)),
        "next": "https://evil.example/",
    }
    assert client.post("/ops/login", data=data).headers["Location"] == "/ops/"


def test_the_api_needs_no_csrf_token(client):
    response = client.post("/api/checkout", json={"email": "x"})
    assert response.status_code == 422
