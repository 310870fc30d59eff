"""Emails: composed and recorded in the database first, then sent once by a job.

When no SMTP server is configured the message is kept (status ``stored``) and the
ops dashboard shows it. A mail failure never fails or delays an order.
"""

from __future__ import annotations

import html
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from orders.config import Settings
from orders.db import utcnow
from orders.infra.mail import OutgoingEmail
from orders.infra.upsert import insert_each_unless_present
from orders.models import Checkout, Email, EmailStatus, Order
from orders.models.tables import EMAILS
from orders.pipeline.context import PipelineContext


def _money(cents: int) -> str:
    return f"${cents / 100:,.2f}"


def _message_id(settings: Settings, key: str) -> str:
    domain = settings.mail_from.rsplit("@", 1)[-1].rstrip(">") or "shop.local"
    return f"<{uuid.uuid5(uuid.NAMESPACE_URL, key).hex}@{domain}>"


def email_row(
    settings: Settings,
    *,
    kind: str,
    dedupe_key: str,
    to_addr: str,
    subject: str,
    lines: list[str],
    checkout_id: int | None = None,
    cart_id: str | None = None,
) -> dict[str, Any]:
    """An email's row, composed (text and HTML) and pending."""
    return {
        "kind": kind,
        "dedupe_key": dedupe_key,
        "checkout_id": checkout_id,
        "cart_id": cart_id,
        "to_addr": to_addr,
        "subject": subject,
        "body_text": "\n".join(lines) + "\n",
        "body_html": "".join(f"<p>{html.escape(line)}</p>" for line in lines),
        "status": EmailStatus.PENDING,
        "message_id": _message_id(settings, dedupe_key),
        "created_at": utcnow(),
    }


def record_emails(session: Session, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Add the email rows (each once per ``dedupe_key``: a re-run finds the one it
    added before) in one statement; their ids, in order."""
    ids = {
        row.dedupe_key: row.id
        for row in insert_each_unless_present(session, EMAILS, rows, ["dedupe_key"])
    }
    there = [row["dedupe_key"] for row in rows if row["dedupe_key"] not in ids]
    if there:
        found = session.execute(
            select(Email.dedupe_key, Email.id).where(Email.dedupe_key.in_(there))
        )
        ids.update({key: email_id for key, email_id in found})
    return [ids[row["dedupe_key"]] for row in rows]


def order_confirmations(
    session: Session, settings: Settings, orders: Sequence[tuple[Checkout, Order]]
) -> list[int]:
    """Record each order's confirmation email; their ids, in order."""
    return record_emails(
        session, [_confirmation(settings, checkout, order) for checkout, order in orders]
    )


def _confirmation(settings: Settings, checkout: Checkout, order: Order) -> dict[str, Any]:
    lines = [f"Thank you for your order {order.order_number}.", ""]
    lines += [
        f"{line.quantity} x {line.name} ({line.sku}) at {_money(line.unit_price_cents)}"
        for line in order.lines
    ]
    if order.discount_cents:
        lines.append(f"Discount: -{_money(order.discount_cents)}")
    lines += [
        f"Total: {_money(order.total_cents)}",
        "",
        f"{settings.public_url}/orders/{order.order_number}",
    ]
    return email_row(
        settings,
        kind="order_confirmation",
        dedupe_key=f"order-confirmation:{checkout.id}",
        to_addr=checkout.email,
        subject=f"Your order {order.order_number} is confirmed",
        lines=lines,
        checkout_id=checkout.id,
    )


def deliver(ctx: PipelineContext, email: Email) -> EmailStatus:
    """Send the email (``sent``), or keep it when no SMTP server is configured (``stored``)."""
    if ctx.mailer is None:
        return EmailStatus.STORED
    ctx.mailer.send(
        OutgoingEmail(
            email.to_addr, email.subject, email.body_text, email.body_html, email.message_id
        )
    )
    return EmailStatus.SENT


def mark_delivered(session: Session, email_ids: list[int], status: EmailStatus) -> None:
    session.execute(
        update(Email)
        .where(Email.id.in_(email_ids))
        .values(status=status, sent_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def delivered_message(email: Email, status: EmailStatus) -> str:
    """The timeline's line for a delivered email."""
    verb = "sent" if status is EmailStatus.SENT else "stored (no SMTP server configured)"
    return f"Email '{email.subject}' to {email.to_addr} {verb}"
