"""Helpers for the ops tests: log in through the real form, pull CSRF tokens from pages."""

from __future__ import annotations

import re

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_from(html: str) -> str:
    match = CSRF.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def login(client, username: str = "ops", password: str = "ops-dev-password"):  # type: ignore[no-untyped-def]
    page = client.get("/ops/login")
    token = csrf_from(page.get_data(as_text=True))
    return client.post(
        "/ops/login",
        data={"username": username, "password": password, "csrf_token": token},
    )


def token(client) -> str:  # type: ignore[no-untyped-def]
    """A logged-in client's CSRF token (from the overview page)."""
    return csrf_from(client.get("/ops/jobs").get_data(as_text=True))
