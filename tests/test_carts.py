"""Cart services against a real database (both backends)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from orders.checkout.place import place_checkout
from orders.errors import ValidationFailed
from orders.models import Cart, Checkout
from orders.shop import carts
from tests.factories import make_product


def test_open_cart_creates_once_and_finds_it_again(session, settings):
    cart = carts.open_cart(session, None)
    session.commit()
    again = carts.open_cart(session, cart.id)
    assert again.id == cart.id
    assert len(session.scalars(select(Cart)).all()) == 1


def test_add_accumulates_and_set_quantity_replaces(session, settings):
    product = make_product(session, stock=10, price_cents=250)
    cart = carts.open_cart(session, None)
    carts.set_quantity(session, settings, cart, product.sku, 2, add=True)
    carts.set_quantity(session, settings, cart, product.sku, 3, add=True)
    view = carts.view_cart(carts.find_open_cart(session, cart.id))
    assert [(line.sku, line.quantity) for line in view.lines] == [(product.sku, 5)]
    assert view.subtotal_cents == 1250 and view.count == 5

    carts.set_quantity(session, settings, cart, product.sku, 1)
    assert carts.view_cart(cart).lines[0].quantity == 1
    carts.set_quantity(session, settings, cart, product.sku, 0)
    assert carts.view_cart(carts.find_open_cart(session, cart.id)).lines == []


@pytest.mark.parametrize(
    ("sku", "quantity", "field", "words"),
    [
        ("NOPE", 1, "sku", "unknown SKU"),
        (None, 4, "quantity", "only 3"),
        (None, 21, "quantity", "at most 20"),
    ],
)
def test_bad_lines_are_refused(session, settings, sku, quantity, field, words):
    product = make_product(session, stock=3)
    cart = carts.open_cart(session, None)
    with pytest.raises(ValidationFailed) as caught:
        carts.set_quantity(session, settings, cart, sku or product.sku, quantity, add=True)
    assert caught.value.errors[0].field == field
    assert words in caught.value.errors[0].message


def test_email_is_validated_and_saved(session, settings):
    cart = carts.open_cart(session, None)
    session.commit()
    with pytest.raises(ValidationFailed):
        carts.set_email(session, cart, "not-an-email")
    session.rollback()
    carts.set_email(session, cart, "  ann@example.com ")
    assert session.get(Cart, cart.id).email == "ann@example.com"


def test_a_checked_out_cart_is_no_longer_open_and_can_be_reopened(session, settings, dispatched):
    product = make_product(session, stock=5)
    cart = carts.open_cart(session, None)
    carts.set_quantity(session, settings, cart, product.sku, 2, add=True)
    placed = place_checkout(
        session,
        settings,
        {"email": "ann@example.com", "cartId": cart.id, "paymentToken": "tok_visa"},
        dispatched,
    )
    assert carts.find_open_cart(session, cart.id) is None

    checkout = session.scalar(select(Checkout).where(Checkout.public_id == placed.public_id))
    reopened = carts.reopen_cart(session, checkout)
    assert reopened.id != cart.id and reopened.email == "ann@example.com"
    assert [(line.sku, line.quantity) for line in carts.view_cart(reopened).lines] == [
        (product.sku, 2)
    ]
