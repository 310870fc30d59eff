"""What a shopper may read about a failed checkout: our own words, never a server's.

A checkout that fails on a business rule (out of stock, card declined) keeps the
message we wrote for it. One that fails because something broke (a gateway that
never answered, an exception after the last attempt) has a message for operators:
exception text, hosts, gateway references. Shoppers get a fixed sentence instead;
operators read the original on the dashboard.
"""

from __future__ import annotations

import re

SHOPPER_SAFE = {
    "out_of_stock": re.compile(r"^[^\x00-\x1f]{1,200}$"),
    "payment_declined": re.compile(r"^Payment declined: [A-Za-z ]{1,60}$"),
    "hold_expired": re.compile(r"^Stock hold expired while the checkout was stuck$"),
}
"""Codes whose message we composed ourselves, and the shape it must have."""

FALLBACK = {
    "out_of_stock": "An item in your order is out of stock.",
    "payment_declined": "Payment declined.",
    "hold_expired": "Your order took too long and was cancelled.",
    "payment_unavailable": (
        "The payment service did not answer, so your order was not completed. "
        "Any charge is refunded automatically."
    ),
}
GENERIC = (
    "Your order could not be completed because of a problem on our side. "
    "Any charge is refunded automatically."
)


def shopper_error(code: str | None, message: str | None) -> str:
    """The failure reason a shopper may read, for this error code and stored message."""
    shape = SHOPPER_SAFE.get(code or "")
    if shape is not None and message and shape.fullmatch(message):
        return message
    return FALLBACK.get(code or "", GENERIC)
