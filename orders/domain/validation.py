"""Shape validation of a checkout request (pure: no database).

Checks the JSON's shape and collects every problem with the field it belongs to;
whether SKUs exist, stock suffices and discount codes are valid is checked against
the database by the checkout service.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from orders.errors import FieldError, ValidationFailed

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
EMAIL_RE = re.compile(rf"^(?=.{{1,64}}@){_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})+$")
"""What SMTP delivers without quoting: a dot-atom local part (RFC 5321), so no
``,;<>"()[]\\:``, spaces or control characters (header and recipient injection), no
non-ASCII; a host name of LDH labels."""
SKU_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
TOKEN_RE = re.compile(r"^[A-Za-z0-9_]{1,100}$")
DEFAULT_PAYMENT_TOKEN = "tok_visa"


@dataclass(frozen=True)
class ItemRequest:
    sku: str
    quantity: int
    index: int = 0  # where it first appeared in ``items`` (for error fields)


@dataclass(frozen=True)
class CheckoutRequest:
    email: str
    items: tuple[ItemRequest, ...]
    cart_id: str | None
    customer_id: str | None
    discount_code: str | None
    payment_token: str


def _optional_str(
    body: dict[str, Any], name: str, max_len: int, errors: list[FieldError]
) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        errors.append(FieldError(name, "must be a string"))
        return None
    value = value.strip()
    if len(value) > max_len:
        errors.append(FieldError(name, f"must be at most {max_len} characters"))
        return None
    if not value.isprintable():  # NUL and other control characters (PostgreSQL refuses NUL)
        errors.append(FieldError(name, "must not contain control characters"))
        return None
    return value or None


def plausible_id(value: str, max_len: int = 64) -> bool:
    """A public id or order number we could have issued (else: not found, no query)."""
    return 0 < len(value) <= max_len and value.isascii() and value.isprintable()


def valid_email(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    value = value.strip()
    return len(value) <= 254 and EMAIL_RE.fullmatch(value) is not None


def validate_payment_token(value: Any, field: str = "paymentToken") -> str:
    if not isinstance(value, str) or not TOKEN_RE.match(value):
        raise ValidationFailed([FieldError(field, "must be a payment token such as tok_visa")])
    return value


def parse_items(raw: Any, max_quantity: int, max_lines: int) -> tuple[ItemRequest, ...]:
    """Validate ``items``; merge repeated SKUs (their quantities add up)."""
    errors: list[FieldError] = []
    if not isinstance(raw, list) or not raw:
        raise ValidationFailed([FieldError("items", "must be a non-empty list")])
    if len(raw) > max_lines:
        raise ValidationFailed([FieldError("items", f"must have at most {max_lines} lines")])
    merged: dict[str, int] = {}
    first_index: dict[str, int] = {}
    for index, item in enumerate(raw):
        where = f"items[{index}]"
        if not isinstance(item, dict):
            errors.append(FieldError(where, "must be an object with sku and quantity"))
            continue
        sku, quantity = item.get("sku"), item.get("quantity")
        if not isinstance(sku, str) or not SKU_RE.match(sku):
            errors.append(FieldError(f"{where}.sku", "must be a product SKU"))
            sku = None
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
            errors.append(FieldError(f"{where}.quantity", "must be a positive integer"))
            quantity = None
        elif quantity > max_quantity:
            errors.append(FieldError(f"{where}.quantity", f"must be at most {max_quantity}"))
            quantity = None
        if sku is not None and quantity is not None:
            merged[sku] = merged.get(sku, 0) + quantity
            first_index.setdefault(sku, index)
    if errors:
        raise ValidationFailed(errors)
    for sku, quantity in merged.items():
        if quantity > max_quantity:
            raise ValidationFailed(
                [FieldError("items", f"{sku}: total quantity must be at most {max_quantity}")]
            )
    return tuple(ItemRequest(sku, qty, first_index[sku]) for sku, qty in merged.items())


def parse_checkout(body: Any, *, max_quantity: int, max_lines: int) -> CheckoutRequest:
    """Validate the JSON body of ``POST /api/checkout``; raise with every field at fault."""
    if not isinstance(body, dict):
        raise ValidationFailed([FieldError("", "the body must be a JSON object")])
    errors: list[FieldError] = []
    email = body.get("email")
    if email is None:
        errors.append(FieldError("email", "is required"))
    elif not valid_email(email):
        errors.append(FieldError("email", "must be a valid email address"))
    customer_id = _optional_str(body, "customerId", 100, errors)
    discount_code = _optional_str(body, "discountCode", 64, errors)
    cart_id = _optional_str(body, "cartId", 64, errors)
    token = body.get("paymentToken", DEFAULT_PAYMENT_TOKEN)
    try:
        token = validate_payment_token(token)
    except ValidationFailed as exc:
        errors.extend(exc.errors)
    items: tuple[ItemRequest, ...] = ()
    if "items" in body and cart_id is not None:
        errors.append(FieldError("items", "send either items or cartId, not both"))
    elif "items" in body or cart_id is None:
        try:
            items = parse_items(body.get("items"), max_quantity, max_lines)
        except ValidationFailed as exc:
            errors.extend(exc.errors)
    if errors:
        raise ValidationFailed(errors)
    assert isinstance(email, str)
    return CheckoutRequest(
        email=email.strip().lower(),
        items=items,
        cart_id=cart_id,
        customer_id=customer_id,
        discount_code=discount_code.upper() if discount_code else None,
        payment_token=token,
    )
