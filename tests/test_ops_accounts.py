"""Operator accounts: the CLI, hashed passwords, roles, and server-side sessions."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from orders.db import utcnow
from orders.models import AuditLog, OpsSession, OpsUser
from orders.ops.passwords import hash_password, verify_password
from tests.ops_support import login, token
from tests.test_ops_access import POSTS

ADMIN_PW = "correct horse battery"
VIEWER_PW = "viewer staple 2026"


def add_user(app, name: str, role: str, password: str, confirm: str | None = None):  # type: ignore[no-untyped-def]
    runner = app.test_cli_runner()
    typed = f"{password}\n{password if confirm is None else confirm}\n"
    return runner.invoke(args=["ops", "user", "add", name, "--role", role], input=typed)


def cli(app, *args: str, input: str | None = None):  # type: ignore[no-untyped-def]
    return app.test_cli_runner().invoke(args=["ops", "user", *args], input=input)


@pytest.fixture
def accounts(app):  # type: ignore[no-untyped-def]
    assert add_user(app, "alice", "admin", ADMIN_PW).exit_code == 0
    assert add_user(app, "victor", "viewer", VIEWER_PW).exit_code == 0
    return app


def session_cookie(client) -> str:  # type: ignore[no-untyped-def]
    cookie = client.get_cookie("session")
    assert cookie is not None
    return str(cookie.value)


def test_passwords_are_salted_scrypt_hashes():
    first, second = hash_password(ADMIN_PW), hash_password(ADMIN_PW)
    assert first.startswith("scrypt$32768$8$1$") and first != second
    assert ADMIN_PW not in first
    assert verify_password(ADMIN_PW, first) and verify_password(ADMIN_PW, second)
    assert not verify_password("wrong " + ADMIN_PW, first)
    assert not verify_password(ADMIN_PW, "plain-text") and not verify_password("", first)


def test_cli_adds_lists_and_stores_only_a_hash(accounts, session):
    listed = cli(accounts, "list")
    assert listed.exit_code == 0
    assert "alice\tadmin" in listed.output and "victor\tviewer" in listed.output
    rows = {u.name: u for u in session.scalars(select(OpsUser))}
    assert rows["alice"].role.value == "admin" and rows["victor"].role.value == "viewer"
    assert ADMIN_PW not in rows["alice"].password_hash
    assert verify_password(ADMIN_PW, rows["alice"].password_hash)
    actions = [(a.actor[:4], a.action, a.target) for a in session.scalars(select(AuditLog))]
    assert ("cli:", "user_add", "alice") in actions or ("cli", "user_add", "alice") in actions


@pytest.mark.parametrize(
    ("args", "typed", "message"),
    [
        (["add", "bob", "--role", "admin"], "short-pw\nshort-pw\n", "shorter than 12"),
        (["add", "bob", "--role", "admin"], "ops-dev-password\nops-dev-password\n", "default"),
        (["add", "bob", "--role", "admin"], f"{ADMIN_PW}\n{ADMIN_PW}x\n", "do not match"),
        (["add", "bob", "--role", "root"], f"{ADMIN_PW}\n{ADMIN_PW}\n", "root"),
        (["add", "bad name", "--role", "admin"], f"{ADMIN_PW}\n{ADMIN_PW}\n", "a name is"),
        (["add", "alice", "--role", "viewer"], f"{ADMIN_PW}\n{ADMIN_PW}\n", "already exists"),
        (["set-password", "nobody"], f"{ADMIN_PW}\n{ADMIN_PW}\n", "no operator account"),
        (["remove", "nobody"], None, "no operator account"),
    ],
)
def test_cli_refuses_bad_input(accounts, args, typed, message):
    result = cli(accounts, *args, input=typed)
    assert result.exit_code != 0
    assert message in result.output
    assert "bob" not in cli(accounts, "list").output


def test_accounts_log_in_and_the_audit_log_names_the_real_user(accounts, client, session):
    assert login(client, "alice", ADMIN_PW).status_code == 302
    response = client.post("/ops/queues/orders/pause", data={"csrf_token": token(client)})
    assert response.status_code == 302
    last = session.scalars(select(AuditLog).order_by(AuditLog.id.desc())).first()
    assert last is not None and (last.actor, last.action) == ("alice", "pause_queue")
    assert login(client, "alice", "wrong " + ADMIN_PW).status_code == 401


def test_a_viewer_sees_every_page_without_buttons(accounts, client):
    assert login(client, "victor", VIEWER_PW).status_code == 302
    for path in ("/ops/", "/ops/jobs", "/ops/jobs?queue=orders", "/ops/emails", "/ops/audit"):
        page = client.get(path)
        assert page.status_code == 200, path
        html = page.get_data(as_text=True)
        assert 'action="/ops/queues' not in html and "Reset breaker" not in html
        assert "Retry all failed" not in html and "Retry selected" not in html
    assert "(viewer)" in client.get("/ops/").get_data(as_text=True)


def test_an_admin_sees_the_buttons(accounts, client):
    assert login(client, "alice", ADMIN_PW).status_code == 302
    html = client.get("/ops/").get_data(as_text=True)
    assert "Reset breaker" in html and 'action="/ops/queues/orders/pause"' in html
    assert "Retry all failed" in client.get("/ops/jobs?queue=orders").get_data(as_text=True)


@pytest.mark.parametrize(
    ("endpoint", "method", "path"),
    [p for p in POSTS if p[0] != "ops.logout"],
    ids=[p for e, _, p in POSTS if e != "ops.logout"],
)
def test_a_viewer_can_act_on_nothing(accounts, client, session, endpoint, method, path):
    assert login(client, "victor", VIEWER_PW).status_code == 302
    before = session.scalar(select(AuditLog.id).order_by(AuditLog.id.desc()))
    response = client.post(path, data={"csrf_token": token(client), "action": "retry"})
    assert response.status_code == 403
    after = session.scalar(select(AuditLog.id).order_by(AuditLog.id.desc()))
    assert after == before  # nothing was done, so nothing was audited


def test_logout_ends_the_session_on_the_server(accounts, app, client):
    assert login(client, "alice", ADMIN_PW).status_code == 302
    stolen = session_cookie(client)
    assert client.post("/ops/logout", data={"csrf_token": token(client)}).status_code == 302
    replay = app.test_client()
    replay.set_cookie("session", stolen)
    assert replay.get("/ops/").status_code == 302  # the copied cookie opens nothing


@pytest.mark.parametrize("change", ["set-password", "remove"])
def test_password_change_and_removal_end_every_session(accounts, app, session, change):
    browsers = [app.test_client() for _ in range(2)]
    for browser in browsers:
        assert login(browser, "alice", ADMIN_PW).status_code == 302
        assert browser.get("/ops/").status_code == 200
    new_pw = "a brand new passphrase"
    typed = f"{new_pw}\n{new_pw}\n" if change == "set-password" else None
    result = cli(app, change, "alice", input=typed)
    assert result.exit_code == 0 and "2 session(s) ended" in result.output
    for browser in browsers:
        assert browser.get("/ops/").status_code == 302
    assert session.scalar(select(OpsSession.id_hash)) is None
    if change == "set-password":
        assert login(app.test_client(), "alice", ADMIN_PW).status_code == 401
        assert login(app.test_client(), "alice", new_pw).status_code == 302
    else:
        assert login(app.test_client(), "alice", ADMIN_PW).status_code == 401


@pytest.mark.parametrize(
    ("column", "age"),
    [("last_seen", timedelta(minutes=31)), ("created_at", timedelta(hours=12, minutes=1))],
)
def test_idle_and_absolute_lifetimes_end_a_session(accounts, client, session, column, age):
    assert login(client, "alice", ADMIN_PW).status_code == 302
    assert client.get("/ops/").status_code == 200
    session.execute(update(OpsSession).values({column: utcnow() - age}))
    session.commit()
    assert client.get("/ops/").status_code == 302
    assert session.scalar(select(OpsSession.id_hash)) is None  # and the row is gone


def test_a_session_in_use_stays_alive(accounts, client, session):
    assert login(client, "alice", ADMIN_PW).status_code == 302
    session.execute(update(OpsSession).values(last_seen=utcnow() - timedelta(minutes=29)))
    session.commit()
    assert client.get("/ops/").status_code == 200  # touched: idle time starts again
    session.expire_all()
    seen = session.scalar(select(OpsSession.last_seen))
    assert seen is not None and utcnow() - seen < timedelta(minutes=1)


def test_the_cookie_holds_only_a_random_id_stored_hashed(accounts, client, session):
    import hashlib

    from flask.sessions import SecureCookieSessionInterface

    assert login(client, "alice", ADMIN_PW).status_code == 302
    app = client.application
    serializer = SecureCookieSessionInterface().get_signing_serializer(app)
    assert serializer is not None
    data = serializer.loads(session_cookie(client))
    assert set(data) == {"ops_sid", "ops_csrf"}
    stored = session.scalar(select(OpsSession.id_hash))
    assert stored == hashlib.sha256(data["ops_sid"].encode()).hexdigest() != data["ops_sid"]


def test_a_changed_bootstrap_password_ends_its_sessions(app, client):
    assert login(client).status_code == 302
    assert client.get("/ops/").status_code == 200
    settings = app.extensions["shop.settings"]
    app.extensions["shop.settings"] = replace(settings, ops_password="another long password")
    assert client.get("/ops/").status_code == 302


def test_an_account_named_like_the_bootstrap_admin_replaces_it(app, client):
    assert add_user(app, "ops", "viewer", ADMIN_PW).exit_code == 0
    assert login(client, "ops", "ops-dev-password").status_code == 401
    assert login(client, "ops", ADMIN_PW).status_code == 302
    assert client.post("/ops/breaker/reset", data={"csrf_token": token(client)}).status_code == 403


def test_an_empty_bootstrap_password_never_opens_the_dashboard(app, client):
    settings = app.extensions["shop.settings"]
    app.extensions["shop.settings"] = replace(settings, ops_password="")
    assert login(client, "ops", "").status_code == 401


def test_a_revoked_session_ends_the_live_dashboard_stream(accounts, client, session, monkeypatch):
    from sqlalchemy import delete

    from orders.web.ops import stream

    monkeypatch.setattr(stream, "INTERVAL_SECONDS", 0.0)
    monkeypatch.setattr(stream, "SESSION_CHECK_EVENTS", 3)
    assert login(client, "alice", ADMIN_PW).status_code == 302
    response = client.get("/ops/stream", buffered=False)
    chunks = iter(response.response)
    events = [next(chunks) for _ in range(3)]  # the retry line and two overviews
    session.execute(delete(OpsSession))
    session.commit()
    events += list(chunks)
    response.close()
    overviews = [e for e in events if b"event: overview" in e]
    assert 2 <= len(overviews) <= 3  # it ended at the next check, long before its lifetime
