"""What every chaos test checks at the end: nothing stuck, money and stock balanced."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from tests.stack import Stack

LIVE_JOBS = "('queued', 'scheduled', 'active')"


def sku() -> str:
    return f"CHAOS-{uuid.uuid4().hex[:8]}"


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def job_status(shop: Stack, public_id: str, job_type: str) -> str | None:
    return shop.scalar(
        "SELECT j.status FROM jobs j JOIN checkouts c ON c.id = j.checkout_id "
        "WHERE c.public_id = :p AND j.type = :t ORDER BY j.created_at DESC LIMIT 1",
        p=public_id,
        t=job_type,
    )


def timeline(shop: Stack, public_id: str) -> list[str]:
    with shop.engine.connect() as conn:
        from sqlalchemy import text

        rows = conn.execute(
            text(
                "SELECT e.message FROM checkout_events e JOIN checkouts c ON c.id = e.checkout_id "
                "WHERE c.public_id = :p ORDER BY e.id"
            ),
            {"p": public_id},
        )
        return [row[0] for row in rows]


def wait_no_live_jobs(shop: Stack, timeout: float = 60) -> None:
    """Follow-ups (emails, refunds) finish too: no job is left waiting or running."""
    shop.wait_idle(timeout)


def assert_balanced(shop: Stack) -> None:
    """The gateway's ledger agrees with our orders, by count and by cents."""
    ledger = shop.gateway.ledger()
    paid = shop.scalar("SELECT COUNT(*) FROM orders")
    paid_cents = shop.scalar("SELECT COALESCE(SUM(total_cents), 0) FROM orders")
    assert ledger["captures"] - ledger["refunds"] == paid, ledger
    assert ledger["captured_cents"] - ledger["refunded_cents"] == paid_cents, ledger
    completed = shop.scalar("SELECT COUNT(*) FROM checkouts WHERE status = 'completed'")
    assert completed == paid
    captured_rows = shop.scalar("SELECT COUNT(*) FROM payments WHERE status = 'captured'")
    assert captured_rows == paid  # every other captured payment was refunded
    assert shop.scalar("SELECT COUNT(*) FROM stock_holds WHERE status = 'held'") == 0


def assert_stock(shop: Stack, item: str, initial: int) -> None:
    stock = shop.scalar("SELECT stock FROM products WHERE sku = :s", s=item)
    sold = shop.scalar("SELECT sold FROM products WHERE sku = :s", s=item)
    units = shop.scalar(
        "SELECT COALESCE(SUM(l.quantity), 0) FROM order_lines l WHERE l.sku = :s", s=item
    )
    assert stock >= 0
    assert sold == units
    assert stock + sold == initial
