"""Input parsing never 500s: quantities and ids take ASCII digits only, ids and nonces
what we could have issued; and the mailer sends to the one recipient it was given."""

from __future__ import annotations

import re
import threading
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from orders.infra.mail import OutgoingEmail, SmtpMailer
from orders.models import Cart
from tests.factories import make_product
from tests.stack import free_port

HOSTILE_QUANTITIES = ["²", "١", "１", "1e3", "-1", "99999", "1" * 400, "0x10", " ", "\x00"]


def csrf(client: Any) -> str:
    html = client.get("/").get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match
    return match.group(1)


@pytest.mark.parametrize("quantity", HOSTILE_QUANTITIES)
def test_the_shop_form_refuses_odd_quantities_without_a_500(client, session, quantity):
    make_product(session, sku="QTY", stock=50)
    token = csrf(client)
    added = client.post(
        "/cart/items", data={"csrf_token": token, "sku": "QTY", "quantity": quantity}
    )
    assert added.status_code == 302  # back to the catalogue, with the message
    assert "enter a whole number" in client.get("/").get_data(as_text=True)
    assert session.query(Cart).count() in (0, 1)
    client.post("/cart/items", data={"csrf_token": token, "sku": "QTY", "quantity": "1"})
    changed = client.post("/cart/items/QTY", data={"csrf_token": token, "quantity": quantity})
    assert changed.status_code == 302
    assert "enter a whole number" in client.get("/cart").get_data(as_text=True)


@pytest.mark.parametrize("value", ["a\x00b", "x" * 5000, "²"])
def test_odd_ids_and_skus_in_shop_addresses_are_not_500(client, session, value):
    from urllib.parse import quote

    make_product(session, sku="IDS", stock=5)
    token = csrf(client)
    assert client.get(f"/cart/{quote(value)}").status_code == 302  # "no such cart"
    update = client.post(f"/cart/items/{quote(value)}", data={"csrf_token": token, "quantity": "1"})
    assert update.status_code == 302
    added = client.post("/cart/items", data={"csrf_token": token, "sku": value, "quantity": "1"})
    assert added.status_code == 302
    for path in (f"/checkout/{quote(value)}", f"/checkout/{quote(value)}/done"):
        assert client.get(path).status_code == 404


def test_a_forged_checkout_nonce_is_replaced_not_sent_to_the_database(client, session):
    make_product(session, sku="NONCE", stock=5)
    token = csrf(client)
    client.post("/cart/items", data={"csrf_token": token, "sku": "NONCE", "quantity": "1"})
    response = client.post(
        "/checkout",
        data={
            "csrf_token": token,
            "attempt": "a\x00" + "b" * 400,
            "email": "ann@example.com",
            "paymentToken": "tok_visa",
        },
    )
    assert response.status_code == 302 and "/checkout/" in response.headers["Location"]


class Inbox:
    def __init__(self) -> None:
        self.envelopes: list[tuple[str, list[str]]] = []
        self.arrived = threading.Event()

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]  # noqa: N802
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.arrived.set()
        return "250 OK"


@pytest.fixture
def inbox() -> Any:
    box = Inbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield box, f"smtp://127.0.0.1:{controller.port}"
    controller.stop()


def test_the_mailer_sends_to_the_one_recipient_only(inbox):
    """An address that slipped past validation (an old row) with a second recipient in
    it: the envelope names the one recipient we were given (smtplib reads the first
    address of it), never the recipients the headers list (send_message without
    ``to_addrs`` would have read the To header's two)."""
    box, url = inbox
    mailer = SmtpMailer(url, "Shop <shop@example.com>")
    mailer.send(OutgoingEmail("ann@example.com", "Hello", "text", "<p>html</p>", "<m1@shop>"))
    assert box.arrived.wait(10)
    assert box.envelopes == [("shop@example.com", ["ann@example.com"])]

    box.arrived.clear()
    sneaky = OutgoingEmail(
        "ann@example.com, eve@evil.example", "Hello", "text", "<p>html</p>", "<m2@shop>"
    )
    mailer.send(sneaky)
    assert box.arrived.wait(10)
    assert box.envelopes[1] == ("shop@example.com", ["ann@example.com"])
