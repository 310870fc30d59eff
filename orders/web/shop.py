"""The shop pages: catalogue, cart, checkout, live progress, confirmation/failure.

Server-rendered; a small script (static/shop.js) makes the progress page live.
Every POST here carries a per-session CSRF token (the JSON API under /api does not
use cookies, so it needs none). The cart id lives in the signed session cookie.
"""

from __future__ import annotations

import hmac
import re
import secrets
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from sqlalchemy import select
from werkzeug.wrappers import Response as BaseResponse

from orders.checkout.card_retry import retry_payment
from orders.checkout.place import place_checkout
from orders.errors import Conflict, ValidationFailed
from orders.models import Checkout, Order
from orders.shop import carts
from orders.shop.catalog import list_products
from orders.shop.status import checkout_status, find_checkout, is_shopper
from orders.web.extensions import commit, db, db_session, dispatch, publish, settings
from orders.web.security import limit
from orders.web.tracing import traced_request

bp = Blueprint("shop", __name__)

QUANTITY_RE = re.compile(r"[0-9]{1,4}")
ATTEMPT_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")

CSRF_KEY = "shop_csrf"
CART_KEY = "cart_id"
CARDS = [
    ("tok_visa", "Visa test card: succeeds"),
    ("tok_declined", "Declined test card: the bank says no"),
    ("tok_flaky", "Flaky test card: fails once, then succeeds"),
    ("tok_error", "Broken test card: the gateway keeps failing"),
]
STEP_WORDS = {
    "queued": "Waiting in line",
    "reserving_stock": "Reserving your items",
    "charging_payment": "Charging your card",
    "creating_order": "Creating your order",
    "updating_inventory": "Updating the inventory",
    "completed": "Order confirmed",
    "failed": "Something went wrong",
}


def csrf_token() -> str:
    token = session.get(CSRF_KEY)
    if not token:
        token = session[CSRF_KEY] = secrets.token_urlsafe(32)
    return str(token)


@bp.before_request
def check_csrf() -> None:
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    limit("shop")  # every form and cart write, counted before anything else is done
    sent = request.form.get("csrf_token", "")
    expected = session.get(CSRF_KEY, "")
    if not expected or not hmac.compare_digest(str(sent), str(expected)):
        abort(400, "The form expired or was not sent from this site; reload and try again.")


@bp.app_template_filter("money")
def money(cents: int) -> str:
    return f"${cents / 100:,.2f}"


@bp.context_processor
def shop_globals() -> dict[str, Any]:
    cart = carts.find_open_cart(db_session(), session.get(CART_KEY))
    return {"csrf_token": csrf_token, "cart_count": carts.view_cart(cart).count}


def current_cart(create: bool = False) -> Any:
    cart_id = session.get(CART_KEY)
    if not create:
        return carts.find_open_cart(db_session(), cart_id)
    cart = carts.open_cart(db_session(), cart_id, session_id=session.get(CSRF_KEY))
    session[CART_KEY] = cart.id
    return cart


def _flash_errors(exc: ValidationFailed) -> None:
    for error in exc.errors or []:
        flash(error.message, "error")


@bp.get("/")
def catalogue() -> str:
    return render_template("shop/catalogue.html", products=list_products(db_session()))


@bp.post("/cart/items")
def add_to_cart() -> BaseResponse:
    cart = current_cart(create=True)
    sku = request.form.get("sku", "")
    try:
        carts.set_quantity(
            db_session(),
            settings(),
            cart,
            sku,
            _quantity(request.form.get("quantity", "1")),
            add=True,
        )
        commit()
        flash("Added to your cart.", "info")
    except ValidationFailed as exc:
        db.session.rollback()
        _flash_errors(exc)
    return redirect(url_for("shop.catalogue") + "#messages")


@bp.get("/cart")
def cart() -> str:
    view = carts.view_cart(current_cart())
    return render_template("shop/cart.html", cart=view)


@bp.post("/cart/items/<sku>")
def update_line(sku: str) -> BaseResponse:
    cart = current_cart()
    if cart is None:
        return redirect(url_for("shop.cart"))
    try:
        quantity = _quantity(request.form.get("quantity", "0"), allow_zero=True)
        carts.set_quantity(db_session(), settings(), cart, sku, quantity)
        commit()
    except ValidationFailed as exc:
        db.session.rollback()
        _flash_errors(exc)
    return redirect(url_for("shop.cart"))


@bp.post("/cart/email")
def cart_email() -> BaseResponse:
    cart = current_cart(create=True)
    try:
        carts.set_email(db_session(), cart, request.form.get("email", ""))
        commit()
        flash("Thanks, we saved your cart for you.", "info")
    except ValidationFailed as exc:
        db.session.rollback()
        _flash_errors(exc)
    return redirect(url_for("shop.cart"))


@bp.get("/cart/<cart_id>")
def recover_cart(cart_id: str) -> BaseResponse:
    """The link in a recovery email: make that cart this browser's cart."""
    if carts.find_open_cart(db_session(), cart_id) is None:
        flash("That cart was already checked out or no longer exists.", "error")
    else:
        session[CART_KEY] = cart_id
    return redirect(url_for("shop.cart"))


@bp.route("/checkout", methods=["GET", "POST"])
@traced_request
def checkout() -> Any:
    form = {
        "email": request.form.get("email", ""),
        "discountCode": request.form.get("discountCode", ""),
        "paymentToken": request.form.get("paymentToken", "tok_visa"),
        "attempt": _attempt(request.form.get("attempt")),
    }
    errors: list[Any] = []
    cart_id = session.get(CART_KEY)
    if request.method == "POST" and cart_id:
        limit("checkout")  # the form places a checkout, as POST /api/checkout does
        try:
            placed = _place(cart_id, form)
        except ValidationFailed as exc:
            db.session.rollback()
            errors = exc.errors or []
            form["attempt"] = secrets.token_urlsafe(12)
        else:
            session.pop(CART_KEY, None)
            return redirect(url_for("shop.progress", job_id=placed.public_id))
    view = carts.view_cart(current_cart())
    if not view.lines:
        flash("Your cart is empty.", "error")
        return redirect(url_for("shop.cart"))
    form["email"] = form["email"] or view.email or ""
    html = render_template("shop/checkout.html", cart=view, form=form, errors=errors, cards=CARDS)
    return Response(html, status=422 if errors else 200)


def _place(cart_id: str, form: dict[str, str]) -> Any:
    """Place the checkout of this cart. The form's ``attempt`` nonce is the idempotency
    key, so a double-submitted form (sent before the first answer cleared the cart from
    the cookie) lands on the same checkout instead of an error."""
    body = {"email": form["email"].strip(), "cartId": cart_id, "paymentToken": form["paymentToken"]}
    if form["discountCode"].strip():
        body["discountCode"] = form["discountCode"].strip()
    return place_checkout(
        db_session(),
        settings(),
        body,
        dispatch(),
        idempotency_key=f"shop:{cart_id}:{form['attempt']}"[:255],
        session_id=session.get(CSRF_KEY),
    )


@bp.get("/checkout/<job_id>")
def progress(job_id: str) -> Any:
    status = checkout_status(db_session(), job_id)
    if status["status"] in ("completed", "failed"):
        return redirect(url_for("shop.done", job_id=job_id))
    return render_template("shop/progress.html", job_id=job_id, status=status, words=_words(status))


@bp.get("/checkout/<job_id>/done")
def done(job_id: str) -> Any:
    checkout = find_checkout(db_session(), job_id)
    status = checkout_status(db_session(), job_id)
    if status["status"] == "completed":
        order = db.session.scalar(select(Order).where(Order.checkout_id == checkout.id))
        # the id in the address (history, screenshots, shared links) is not proof of being
        # the shopper: the email shows only to the browser session that placed the order
        mine = is_shopper(checkout, None, [session.get(CSRF_KEY)])
        return render_template("shop/confirmation.html", order=order, status=status, mine=mine)
    if status["status"] == "failed":
        html = render_template(
            "shop/failure.html", job_id=job_id, status=status, cards=CARDS[:1] + CARDS[2:]
        )
        return Response(html, status=200)
    return redirect(url_for("shop.progress", job_id=job_id))


@bp.post("/checkout/<job_id>/payment")
def another_card(job_id: str) -> BaseResponse:
    """The no-script path of "try another card" (the script calls POST /api/payments)."""
    limit("payment")
    try:
        retry_payment(
            db_session(), settings(), job_id, request.form.get("paymentToken"), dispatch()
        )
    except (ValidationFailed, Conflict) as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for("shop.done", job_id=job_id))
    publish(job_id)
    return redirect(url_for("shop.progress", job_id=job_id))


@bp.post("/checkout/<job_id>/cart")
def back_to_cart(job_id: str) -> BaseResponse:
    """After a failure: a new cart with the same lines."""
    checkout: Checkout = find_checkout(db_session(), job_id)
    if checkout.status.value != "failed":
        return redirect(url_for("shop.done", job_id=job_id))
    cart = carts.reopen_cart(db_session(), checkout, session_id=session.get(CSRF_KEY))
    commit()
    session[CART_KEY] = cart.id
    return redirect(url_for("shop.cart"))


def _words(status: dict[str, Any]) -> str:
    words: str = STEP_WORDS.get(status.get("step") or status["status"], status.get("message", ""))
    return words


def _quantity(raw: str, allow_zero: bool = False) -> int:
    """ASCII digits only, at most four (``str.isdigit`` takes ``²``, which ``int`` refuses)."""
    from orders.errors import FieldError

    raw = raw.strip()
    if not QUANTITY_RE.fullmatch(raw) or (int(raw) == 0 and not allow_zero):
        raise ValidationFailed([FieldError("quantity", "enter a whole number of items")])
    return int(raw)


def _attempt(raw: str | None) -> str:
    """The form's nonce (part of the idempotency key), or a new one if it is not ours."""
    if raw and ATTEMPT_RE.fullmatch(raw):
        return raw
    return secrets.token_urlsafe(12)
