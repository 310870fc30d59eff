"""The audit after every run: money and stock must add up, nothing lost or stuck.

Computed from the shop's database and the simulated gateway's ledger (its own
SQLite file, the "bank's" side), never from what the shop says about itself.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine

FINAL = ("completed", "failed")


def audit(
    engine: Engine,
    ledger: Path,
    *,
    initial_stock: dict[str, int],
    accepted_ids: list[str],
) -> dict[str, int]:
    """Counts that must all be 0 (the ``*_must_be_0`` keys) plus context counts."""
    with engine.connect() as conn:
        products = conn.execute(text("SELECT id, sku, stock, sold FROM products")).all()
        held = dict(
            conn.execute(
                text(
                    "SELECT product_id, SUM(quantity) FROM stock_holds WHERE status = 'held' "
                    "GROUP BY product_id"
                )
            ).all()
        )
        ordered = dict(
            conn.execute(
                text("SELECT product_id, SUM(quantity) FROM order_lines GROUP BY product_id")
            ).all()
        )
        statuses: dict[str, str] = dict(
            conn.execute(text("SELECT public_id, status FROM checkouts")).all()
        )
        orders_per_checkout = conn.execute(
            text(
                "SELECT COUNT(*) FROM (SELECT checkout_id FROM orders GROUP BY checkout_id "
                "HAVING COUNT(*) > 1) AS dup"
            )
        ).scalar_one()
        completed_without_order = conn.execute(
            text(
                "SELECT COUNT(*) FROM checkouts c WHERE c.status = 'completed' AND NOT EXISTS "
                "(SELECT 1 FROM orders o WHERE o.checkout_id = c.id)"
            )
        ).scalar_one()
    oversold = mismatch = sold_vs_orders = 0
    for product_id, sku, stock, sold in products:
        if sku not in initial_stock:
            continue
        taken = sold + int(held.get(product_id) or 0)
        oversold += max(0, taken - initial_stock[sku]) + max(0, -stock)
        mismatch += abs(stock + taken - initial_stock[sku])
        sold_vs_orders += abs(sold - int(ordered.get(product_id) or 0))

    captures, refunds = _ledger(ledger)
    net = Counter(captures)
    net.subtract(refunds)
    double = sum(1 for count in net.values() if count > 1)
    charged_not_completed = sum(
        1
        for public_id, count in net.items()
        if count > 0 and statuses.get(public_id) != "completed"
    )
    completed_not_charged = sum(
        1 for public_id, status in statuses.items() if status == "completed" and net[public_id] < 1
    )
    lost = sum(1 for public_id in accepted_ids if public_id not in statuses)
    stuck = sum(1 for status in statuses.values() if status not in FINAL)
    counts = Counter(statuses.values())
    return {
        "oversold_units_must_be_0": oversold,
        "stock_mismatch_units_must_be_0": mismatch,
        "sold_vs_order_lines_must_be_0": sold_vs_orders,
        "double_charges_must_be_0": double,
        "charged_but_not_completed_must_be_0": charged_not_completed,
        "completed_but_not_charged_must_be_0": completed_not_charged,
        "duplicate_orders_must_be_0": orders_per_checkout,
        "completed_without_order_must_be_0": completed_without_order,
        "lost_checkouts_must_be_0": lost,
        "stuck_checkouts_must_be_0": stuck,
        "checkouts": len(statuses),
        "completed": counts.get("completed", 0),
        "failed": counts.get("failed", 0),
        "accepted_by_client": len(accepted_ids),
        "captures": sum(captures.values()),
        "refunds": sum(refunds.values()),
    }


def _ledger(path: Path) -> tuple[Counter[str], Counter[str]]:
    """Captured charges and refunds per checkout public id (from the idempotency keys)."""
    captures: Counter[str] = Counter()
    refunds: Counter[str] = Counter()
    if not path.exists():
        return captures, refunds
    conn = sqlite3.connect(path, timeout=30)
    try:
        charge_of: dict[str, str] = {}
        for key, ref in conn.execute(
            "SELECT idempotency_key, ref FROM charges WHERE status = 'captured'"
        ):
            public_id = key.split("_")[1]  # pay_<public id>_<attempt>
            captures[public_id] += 1
            charge_of[ref] = public_id
        for (charge_ref,) in conn.execute("SELECT charge_ref FROM refunds"):
            if charge_ref in charge_of:
                refunds[charge_of[charge_ref]] += 1
    finally:
        conn.close()
    return captures, refunds


def failures(result: dict[str, Any]) -> dict[str, int]:
    return {k: v for k, v in result.items() if k.endswith("_must_be_0") and v}
