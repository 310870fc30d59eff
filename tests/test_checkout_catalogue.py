"""A web process remembers the products it read (orders.checkout.statement,
PostgreSQL's way of writing a checkout): most checkouts then skip the catalogue read,
and none is ever answered from a remembered row that has changed since."""

from __future__ import annotations

import pytest
from sqlalchemy import event, select, text

from orders.checkout import statement as checkout_at_once
from orders.models import Checkout, CheckoutLine
from orders.web.extensions import db
from tests.factories import checkout_body, make_product
from tests.test_api_checkout import post

pytestmark = [
    pytest.mark.postgres,  # the one-statement write is PostgreSQL's
    pytest.mark.parametrize("database_url", ["postgres"], indirect=True),
]


@pytest.fixture
def statements(app, monkeypatch):
    """Every SQL statement the web sends, in order: through SQLAlchemy, and the
    checkout's write, which runs on the driver's cursor (execute_on_driver)."""
    with app.app_context():
        engine = db.engine
    sent: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:
        sent.append(statement)

    on_driver = checkout_at_once.execute_on_driver

    def record_on_driver(conn, statement, params, **options):
        sent.append(statement)
        return on_driver(conn, statement, params, **options)

    monkeypatch.setattr(checkout_at_once, "execute_on_driver", record_on_driver)
    event.listen(engine, "before_cursor_execute", record)
    yield sent
    event.remove(engine, "before_cursor_execute", record)


def line_of(session, response):
    assert response.status_code == 202, response.get_data(as_text=True)
    public_id = response.get_json()["data"]["jobId"]
    session.expire_all()
    checkout = session.scalar(select(Checkout).where(Checkout.public_id == public_id))
    line = session.scalar(select(CheckoutLine).where(CheckoutLine.checkout_id == checkout.id))
    return checkout, line


def test_a_remembered_product_saves_the_read(client, session, statements):
    make_product(session, sku="TEE", price_cents=2500, stock=50)
    first = post(client, checkout_body(("TEE", 1)))
    assert first.status_code == 202
    read_first = [s for s in statements if "FROM products" in s and "INSERT" not in s]
    statements.clear()
    line_of(session, post(client, checkout_body(("TEE", 2))))
    assert len(read_first) == 1
    assert len(statements) == 1 and statements[0].startswith("WITH i AS")


def test_a_changed_price_or_name_is_the_live_one(client, session, statements):
    product = make_product(session, sku="TEE", price_cents=2500, stock=50)
    line_of(session, post(client, checkout_body(("TEE", 1))))  # remembered now
    session.execute(
        text("UPDATE products SET price_cents = 1999, name = 'Tee, new' WHERE id = :id"),
        {"id": product.id},
    )
    session.commit()
    statements.clear()
    checkout, line = line_of(session, post(client, checkout_body(("TEE", 2))))
    assert (line.unit_price_cents, line.name, checkout.total_cents) == (1999, "Tee, new", 3998)
    # the guarded write wrote nothing, the fresh read and the write followed
    assert len(statements) == 3
    checkout, line = line_of(session, post(client, checkout_body(("TEE", 1))))
    assert (line.unit_price_cents, checkout.total_cents) == (1999, 1999)


def test_stock_gone_since_is_refused_and_stock_back_is_accepted(client, session):
    product = make_product(session, sku="TEE", stock=5)
    line_of(session, post(client, checkout_body(("TEE", 1))))  # remembered: 5 in stock
    session.execute(text("UPDATE products SET stock = 0 WHERE id = :id"), {"id": product.id})
    session.commit()
    refused = post(client, checkout_body(("TEE", 1)))
    assert refused.status_code == 422
    assert refused.get_json()["errors"][0]["field"] == "items[0].quantity"
    assert "out of stock" in refused.get_json()["errors"][0]["message"]
    # remembered: 0 in stock now; a restock is seen at once
    session.execute(text("UPDATE products SET stock = 3 WHERE id = :id"), {"id": product.id})
    session.commit()
    line_of(session, post(client, checkout_body(("TEE", 3))))
    assert session.scalar(text("SELECT COUNT(*) FROM checkouts")) == 2
