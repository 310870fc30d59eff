"""Server-side carts for the shop pages (keyed by the shopper's session cookie).

A cart is open until a checkout takes it (``checked_out_at``). Cart ids are random
128-bit values: knowing one is what lets a recovery email's link reopen the cart.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from orders.config import Settings
from orders.db import utcnow
from orders.domain.validation import SKU_RE, plausible_id, valid_email
from orders.errors import FieldError, ValidationFailed
from orders.models import Cart, CartItem, Checkout, Product


@dataclass(frozen=True)
class CartLine:
    sku: str
    name: str
    quantity: int
    unit_price_cents: int
    stock: int

    @property
    def total_cents(self) -> int:
        return self.quantity * self.unit_price_cents


@dataclass(frozen=True)
class CartView:
    id: str
    email: str | None
    lines: list[CartLine]

    @property
    def subtotal_cents(self) -> int:
        return sum(line.total_cents for line in self.lines)

    @property
    def count(self) -> int:
        return sum(line.quantity for line in self.lines)


def find_open_cart(session: Session, cart_id: str | None) -> Cart | None:
    """The cart with this id if it exists and was not checked out."""
    if not cart_id or not plausible_id(cart_id):
        return None
    cart = session.scalar(
        select(Cart)
        .where(Cart.id == cart_id, Cart.checked_out_at.is_(None))
        .options(selectinload(Cart.items).selectinload(CartItem.product))
    )
    return cart


def open_cart(session: Session, cart_id: str | None, session_id: str | None = None) -> Cart:
    """The shopper's open cart, or a new one (added to the session, not committed)."""
    cart = find_open_cart(session, cart_id)
    if cart is None:
        now = utcnow()
        cart = Cart(id=uuid.uuid4().hex, session_id=session_id, created_at=now, updated_at=now)
        session.add(cart)
        session.flush()
    return cart


def view_cart(cart: Cart | None) -> CartView:
    if cart is None:
        return CartView("", None, [])
    lines = [
        CartLine(
            item.product.sku,
            item.product.name,
            item.quantity,
            item.product.price_cents,
            item.product.stock,
        )
        for item in cart.items
    ]
    return CartView(cart.id, cart.email, lines)


def _product(session: Session, sku: str) -> Product:
    product = None
    if SKU_RE.fullmatch(sku):  # anything else is no SKU of ours (and NUL would upset PostgreSQL)
        product = session.scalar(select(Product).where(Product.sku == sku))
    if product is None:
        raise ValidationFailed([FieldError("sku", f"unknown SKU {sku[:64]}")])
    return product


def set_quantity(
    session: Session, settings: Settings, cart: Cart, sku: str, quantity: int, *, add: bool = False
) -> Cart:
    """Set (or with ``add``, increase) a line's quantity; 0 removes it."""
    product = _product(session, sku)
    item = next((i for i in cart.items if i.product_id == product.id), None)
    wanted = quantity + (item.quantity if item and add else 0)
    if quantity < 0 or (add and quantity < 1):
        raise ValidationFailed([FieldError("quantity", "must be a positive whole number")])
    if wanted > settings.max_item_quantity:
        raise ValidationFailed(
            [FieldError("quantity", f"at most {settings.max_item_quantity} of one item")]
        )
    if wanted > product.stock:
        raise ValidationFailed(
            [FieldError("quantity", f"only {product.stock} of {product.name} left")]
        )
    if wanted == 0:
        if item is not None:
            cart.items.remove(item)
    elif item is None:
        if len(cart.items) >= settings.max_cart_lines:
            raise ValidationFailed([FieldError("sku", "the cart is full")])
        cart.items.append(CartItem(product=product, quantity=wanted))
    else:
        item.quantity = wanted
    cart.updated_at = utcnow()
    return cart


def set_email(session: Session, cart: Cart, email: str) -> Cart:
    """Remember the shopper's email (used at checkout and for a recovery email)."""
    email = email.strip()
    if not valid_email(email):
        raise ValidationFailed([FieldError("email", "enter a valid email address")])
    cart.email = email
    cart.updated_at = utcnow()
    return cart


def reopen_cart(session: Session, checkout: Checkout, session_id: str | None = None) -> Cart:
    """A new open cart with a failed checkout's lines and email (back to the cart)."""
    cart = open_cart(session, None, session_id)
    cart.email = checkout.email
    for line in checkout.lines:
        cart.items.append(CartItem(product_id=line.product_id, quantity=line.quantity))
    session.flush()
    return find_open_cart(session, cart.id) or cart
