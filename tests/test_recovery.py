"""Abandoned-cart reminders: which carts, once each, delivered to a real SMTP server."""

from __future__ import annotations

import email
import email.policy
import threading
from datetime import timedelta

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from orders.db import utcnow
from orders.infra.mail import SmtpMailer
from orders.models import Cart, Email, Job
from orders.pipeline.jobs import send_after_commit
from orders.shop import carts
from orders.shop.recovery import abandoned_carts, remind_abandoned_carts
from tests.factories import make_product
from tests.stack import free_port


def remind(session, settings, dispatched):
    """The scheduler's round: record the reminders, commit, send their jobs."""
    refs = remind_abandoned_carts(session, settings)
    session.commit()
    send_after_commit(session, refs, dispatched)
    return refs


def make_cart(session, settings, *, email="ann@example.com", age_minutes=120, items=True):
    cart = carts.open_cart(session, None)
    if items:
        product = make_product(session, stock=10)
        carts.set_quantity(session, settings, cart, product.sku, 1, add=True)
    if email:
        carts.set_email(session, cart, email)
    cart.updated_at = utcnow() - timedelta(minutes=age_minutes)
    session.commit()
    return cart.id


def test_selection_needs_email_items_age_and_no_checkout(session, settings):
    due = make_cart(session, settings)
    make_cart(session, settings, email=None)  # nobody to remind
    make_cart(session, settings, items=False)  # nothing left behind
    make_cart(session, settings, age_minutes=5)  # still shopping
    done = make_cart(session, settings)
    session.get(Cart, done).checked_out_at = utcnow()
    session.commit()

    cutoff = utcnow() - timedelta(minutes=settings.cart_abandon_minutes)
    assert abandoned_carts(session, cutoff) == [due]


def test_one_email_and_one_job_per_cart_even_when_run_twice(session, settings, dispatched):
    cart_id = make_cart(session, settings)
    first = remind(session, settings, dispatched)
    second = remind(session, settings, dispatched)

    assert [r.type for r in first] == ["send-recovery-email"] and second == []
    assert [r.type for r in dispatched.refs] == ["send-recovery-email"]
    email = session.scalar(select(Email).where(Email.cart_id == cart_id))
    assert email.dedupe_key == f"cart-recovery:{cart_id}"
    assert f"{settings.public_url}/cart/{cart_id}" in email.body_text
    job = session.get(Job, first[0].id)
    assert job.priority == 80  # LOW (seed 20) on Huey's scale
    assert session.get(Cart, cart_id).recovery_sent_at is not None


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], str]] = []
        self.arrived = threading.Event()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        self.messages.append((list(envelope.rcpt_tos), envelope.content.decode()))
        self.arrived.set()
        return "250 OK"


@pytest.fixture
def smtp_server():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield inbox, f"smtp://127.0.0.1:{controller.port}"
    controller.stop()


def test_recovery_email_is_delivered_over_smtp(session, settings, dispatched, drain, smtp_server):
    inbox, url = smtp_server
    cart_id = make_cart(session, settings, email="bob@example.com")
    drain.ctx.mailer = SmtpMailer(url, settings.mail_from)

    remind(session, settings, dispatched)
    assert drain() == [("send-recovery-email", "completed")]

    assert inbox.arrived.wait(10)
    (recipients, content) = inbox.messages[0]
    message = email.message_from_string(content, policy=email.policy.default)
    assert recipients == ["bob@example.com"]
    assert message["Subject"] == "You left something in your cart"
    text = message.get_body(("plain",)).get_content()
    assert f"{settings.public_url}/cart/{cart_id}" in text
    session.expire_all()
    assert session.scalar(select(Email).where(Email.cart_id == cart_id)).status.value == "sent"
