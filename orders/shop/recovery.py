"""Abandoned carts: a reminder email, once per cart, with a link back to it.

A cart is abandoned when it has an email and items, was not checked out, and has
not changed for ``CART_ABANDON_MINUTES``. Each one is claimed with a conditional
UPDATE (``recovery_sent_at IS NULL``), so two schedulers can't both send; the email
row's ``dedupe_key`` makes the same promise at the email level.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from orders.config import Settings
from orders.db import rowcount, utcnow
from orders.models import Cart, CartItem
from orders.pipeline.emails import email_row, record_emails
from orders.pipeline.jobs import JobRef, new_job
from orders.pipeline.jobtypes import SEND_RECOVERY_EMAIL
from orders.shop.carts import find_open_cart, view_cart


def abandoned_carts(session: Session, cutoff: datetime, limit: int = 100) -> list[str]:
    """Ids of carts to remind, oldest first."""
    return list(
        session.scalars(
            select(Cart.id)
            .where(
                Cart.email.is_not(None),
                Cart.checked_out_at.is_(None),
                Cart.recovery_sent_at.is_(None),
                Cart.updated_at <= cutoff,
                exists().where(CartItem.cart_id == Cart.id),
            )
            .order_by(Cart.updated_at)
            .limit(limit)
        )
    )


def cart_link(settings: Settings, cart_id: str) -> str:
    return f"{settings.public_url}/cart/{cart_id}"


def remind_abandoned_carts(
    session: Session, settings: Settings, now: datetime | None = None
) -> list[JobRef]:
    """Record one recovery email (and its ``send-recovery-email`` job) per abandoned
    cart, in the caller's transaction; the jobs to send once it commits."""
    now = now or utcnow()
    cutoff = now - timedelta(minutes=settings.cart_abandon_minutes)
    refs: list[JobRef] = []
    for cart_id in abandoned_carts(session, cutoff):
        claimed = session.execute(
            update(Cart)
            .where(Cart.id == cart_id, Cart.recovery_sent_at.is_(None))
            .values(recovery_sent_at=now)
            .execution_options(synchronize_session=False)
        )
        if rowcount(claimed) != 1:
            continue
        cart = find_open_cart(session, cart_id)
        if cart is None or not cart.email:
            continue
        view = view_cart(cart)
        lines = ["You left these in your cart:", ""]
        lines += [f"{line.quantity} x {line.name}" for line in view.lines]
        lines += ["", f"Pick up where you left off: {cart_link(settings, cart.id)}"]
        row = email_row(
            settings,
            kind="cart_recovery",
            dedupe_key=f"cart-recovery:{cart.id}",
            to_addr=cart.email,
            subject="You left something in your cart",
            lines=lines,
            cart_id=cart.id,
        )
        (email_id,) = record_emails(session, [row])
        refs.append(
            new_job(session, settings, SEND_RECOVERY_EMAIL, cart_id=cart.id, email_id=email_id)
        )
    return refs
