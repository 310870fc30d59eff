"""Ops logins over real HTTP (requests), for the tests that run gunicorn."""

from __future__ import annotations

import threading

import requests

from tests.ops_support import csrf_from


def login_form(base_url: str, forwarded_for: str | None = None) -> tuple[requests.Session, str]:
    """A browser of its own with the login page's CSRF token (its cookie holds the pair)."""
    browser = requests.Session()
    if forwarded_for:
        browser.headers["X-Forwarded-For"] = forwarded_for
    page = browser.get(f"{base_url}/ops/login", timeout=10)
    assert page.status_code == 200, page.text
    return browser, csrf_from(page.text)


def post_login(
    base_url: str, username: str, password: str, forwarded_for: str | None = None
) -> int:
    browser, token = login_form(base_url, forwarded_for)
    with browser:
        response = browser.post(
            f"{base_url}/ops/login",
            data={"username": username, "password": password, "csrf_token": token},
            allow_redirects=False,
            timeout=30,
        )
        return response.status_code


def concurrent_logins(
    base_url: str, count: int, username: str, password: str, forwarded_for: str | None = None
) -> list[int]:
    """``count`` logins sent at the same instant (forms fetched first, then a barrier)."""
    forms = [login_form(base_url, forwarded_for) for _ in range(count)]
    barrier = threading.Barrier(count)
    codes: list[int] = [0] * count

    def send(index: int) -> None:
        browser, token = forms[index]
        barrier.wait()
        response = browser.post(
            f"{base_url}/ops/login",
            data={"username": username, "password": password, "csrf_token": token},
            allow_redirects=False,
            timeout=60,
        )
        codes[index] = response.status_code
        browser.close()

    threads = [threading.Thread(target=send, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return codes
