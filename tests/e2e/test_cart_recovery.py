"""The scheduler's periodic task sends one recovery email for a cart left with an
email, to a real SMTP server, with a link that reopens the cart (real processes)."""

from __future__ import annotations

import email
import email.policy
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import ExitStack

import pytest
import requests
from aiosmtpd.controller import Controller

from tests.e2e.conftest import STACKS, open_stack
from tests.stack import Stack, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("stream")]


class Inbox:
    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.arrived = threading.Event()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        self.messages.append(
            email.message_from_bytes(envelope.content, policy=email.policy.default)
        )
        self.arrived.set()
        return "250 OK"


@pytest.fixture(scope="module")
def inbox() -> Iterator[tuple[Inbox, int]]:
    box = Inbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield box, controller.port
    controller.stop()


@pytest.fixture(scope="module", params=STACKS)
def shop(request, tmp_path_factory, inbox) -> Iterator[Stack]:
    with ExitStack() as exits:
        stack = open_stack(
            request.param,
            tmp_path_factory,
            exits,
            CART_ABANDON_MINUTES="0",
            SMTP_URL=f"smtp://127.0.0.1:{inbox[1]}",
        )
        exits.callback(stack.close)
        yield stack.up()


def csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_a_cart_left_with_an_email_gets_one_recovery_email(shop: Stack, inbox) -> None:
    box, _port = inbox
    box.messages.clear()
    box.arrived.clear()
    sku = f"REC-{uuid.uuid4().hex[:8]}"
    shop.add_product(sku, stock=5)
    browser = requests.Session()
    token = csrf(browser.get(f"{shop.base_url}/").text)
    added = browser.post(f"{shop.base_url}/cart/items", data={"csrf_token": token, "sku": sku})
    assert added.ok
    address = f"{uuid.uuid4().hex[:8]}@example.com"
    saved = browser.post(
        f"{shop.base_url}/cart/email", data={"csrf_token": token, "email": address}
    )
    assert saved.ok

    assert box.arrived.wait(150), "no recovery email (the task runs once a minute)\n" + shop.log(
        "scheduler"
    )
    message = box.messages[0]
    assert message["To"] == address
    link = re.search(r"http://\S+/cart/([0-9a-f]{32})", message.get_body(("plain",)).get_content())
    assert link, message.get_body(("plain",)).get_content()

    other_browser = requests.Session()
    page = other_browser.get(f"{shop.base_url}/cart/{link.group(1)}")
    assert f"Test {sku}" in page.text  # the link reopens that cart anywhere

    sent = shop.scalar(
        "SELECT COUNT(*) FROM emails WHERE kind = 'cart_recovery' AND to_addr = :a", a=address
    )
    assert sent == 1
