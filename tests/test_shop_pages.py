"""The shop pages through the Flask test client (real database, recorded dispatch)."""

from __future__ import annotations

import re

import pytest

from orders.models import Cart
from tests.factories import make_product


def token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


@pytest.fixture
def product(session):
    return make_product(session, sku="PAGE-TEE", stock=7, price_cents=2500, name="Page Tee")


def add(client, sku: str, quantity: int = 1):
    csrf = token(client.get("/").get_data(as_text=True))
    return client.post("/cart/items", data={"csrf_token": csrf, "sku": sku, "quantity": quantity})


def test_catalogue_shows_prices_stock_and_hooks(client, product):
    html = client.get("/").get_data(as_text=True)
    assert 'data-testid="product-card"' in html and 'data-testid="add-to-cart"' in html
    assert "$25.00" in html and "7 in stock" in html
    assert 'data-testid="cart-link"' in html


def test_posts_without_a_csrf_token_are_refused(client, product):
    client.get("/")
    response = client.post("/cart/items", data={"sku": product.sku, "quantity": "1"})
    assert response.status_code == 400
    assert "text/html" in response.content_type
    wrong = client.post("/cart/items", data={"csrf_token": "x", "sku": product.sku})
    assert wrong.status_code == 400


def test_the_json_api_needs_no_csrf_token(client, product):
    response = client.post(
        "/api/checkout",
        json={
            "email": "a@example.com",
            "items": [{"sku": product.sku, "quantity": 1}],
            "paymentToken": "tok_visa",
        },
    )
    assert response.status_code == 202


def test_add_to_cart_then_check_out_goes_to_the_progress_page(client, product, dispatched):
    assert add(client, product.sku, 2).status_code == 302
    cart_html = client.get("/cart").get_data(as_text=True)
    assert "Page Tee" in cart_html and "$50.00" in cart_html
    form = client.get("/checkout").get_data(as_text=True)
    assert 'data-testid="checkout-form"' in form and 'data-testid="place-order"' in form
    attempt = re.search(r'name="attempt" value="([^"]+)"', form).group(1)

    response = client.post(
        "/checkout",
        data={
            "csrf_token": token(form),
            "attempt": attempt,
            "email": "ann@example.com",
            "discountCode": "",
            "paymentToken": "tok_visa",
        },
    )
    assert response.status_code == 302
    job_id = response.headers["Location"].rsplit("/", 1)[-1]
    assert dispatched.types() == ["reserve-stock"]

    page = client.get(f"/checkout/{job_id}").get_data(as_text=True)
    assert 'role="progressbar"' in page and 'aria-valuenow="0"' in page
    assert f"/api/orders/status/{job_id}/stream" in page
    assert '<meta http-equiv="refresh"' in page  # the no-script fallback
    assert client.get("/cart").get_data(as_text=True).count("Page Tee") == 0  # cart is used up


def test_checkout_form_shows_validation_errors(client, product):
    add(client, product.sku)
    form = client.get("/checkout").get_data(as_text=True)
    response = client.post(
        "/checkout",
        data={
            "csrf_token": token(form),
            "email": "nope",
            "paymentToken": "tok_visa",
            "discountCode": "BOGUS",
        },
    )
    assert response.status_code == 422
    assert 'role="alert"' in response.get_data(as_text=True)


def test_the_recovery_link_reopens_the_cart_in_a_new_browser(app, client, product, session):
    add(client, product.sku, 3)
    cart_id = session.query(Cart.id).scalar()
    other = app.test_client()
    response = other.get(f"/cart/{cart_id}")
    assert response.status_code == 302
    assert "Page Tee" in other.get("/cart").get_data(as_text=True)


def test_a_double_submitted_checkout_form_is_one_checkout(client, product, dispatched):
    add(client, product.sku)
    form = client.get("/checkout").get_data(as_text=True)
    attempt = re.search(r'name="attempt" value="([^"]+)"', form).group(1)
    data = {
        "csrf_token": token(form),
        "attempt": attempt,
        "email": "ann@example.com",
        "paymentToken": "tok_visa",
        "discountCode": "",
    }
    cookie = client.get_cookie("session").value

    first = client.post("/checkout", data=data)
    client.set_cookie("session", cookie)  # the second click went out with the old cookie
    second = client.post("/checkout", data=data)

    assert first.status_code == second.status_code == 302
    assert first.headers["Location"] == second.headers["Location"]
    assert dispatched.types() == ["reserve-stock"]
