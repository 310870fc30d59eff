"""The issue's goals and the seed's table, judged from a run's figures (never asserted)."""

from __future__ import annotations

from typing import Any

from bench.audit import failures
from bench.report import SEED, max_users_under


def goals(data: dict[str, Any]) -> list[dict[str, Any]]:
    rows = {(r["mode"], r["users"]): r for r in data["users"]}
    out = []
    a500 = rows.get(("async", 500))
    clean = not failures(data["audit"])
    out.append(
        {
            "goal": "async checkout p99 < 50 ms at 500 users, 0 errors, audit zero",
            "met": bool(a500 and a500["p99_ms"] < 50 and a500["errors"] == 0 and clean),
            "measured": (
                f"p99 {a500['p99_ms']:.1f} ms once all 500 had arrived (p99 "
                f"{a500.get('ramp_p99_ms', float('nan')):.1f} ms while they were arriving over "
                f"{a500.get('ramp_s', 0):g} s), {a500['errors']} errors in the whole run, audit "
                f"{'clean' if clean else 'NOT clean'}"
            )
            if a500
            else "not measured (500 users are in the full profile)",
        }
    )
    micro = data.get("micro") or {}
    ratio = micro.get("capacity_ratio", 0.0)
    topped = micro.get("capacity_at_top_of_sweep", {})
    bound = ""
    if topped.get("bare") and not topped.get("checkout"):
        bound = " at most (the bare endpoint passed the sweep's top rate)"
    elif topped.get("checkout") and not topped.get("bare"):
        bound = " at least (the checkout passed the sweep's top rate)"
    elif topped.get("checkout"):
        bound = " (both passed their sweep's top rate: bounds, not capacities)"
    out.append(
        {
            "goal": "checkout capacity >= 40 % of the bare LPUSH endpoint's",
            "met": ratio >= 0.4 and not topped.get("bare"),
            "measured": f"{100 * ratio:.0f} %{bound}",
        }
    )
    ops = micro.get("pipeline_orders_per_s", 0.0)
    out.append(
        {
            "goal": "pipeline with zero latency >= 150 orders/s end to end",
            "met": ops >= 150,
            "measured": f"{ops:.1f} orders/s",
        }
    )
    s200, a200 = rows.get(("sync", 200)), rows.get(("async", 200))
    r = s200["avg_ms"] / a200["avg_ms"] if s200 and a200 and a200["avg_ms"] else 0.0
    out.append(
        {
            "goal": "sync/async average response ratio > 50x at 200 users",
            "met": r > 50,
            "measured": f"{r:.0f}x" if r else "not measured",
        }
    )
    return out


def versus_seed(rows: list[dict[str, Any]]) -> dict[str, Any]:
    by = {(r["mode"], r["users"]): r for r in rows}
    counts = sorted({r["users"] for r in rows})
    at = 200 if 200 in counts else counts[-1]
    largest = counts[-1]
    sync, asyn = by.get(("sync", at)), by.get(("async", at))
    return {
        "at_users": at,
        "sync_avg_ms": sync["avg_ms"] if sync else float("nan"),
        "async_avg_ms": asyn["avg_ms"] if asyn else float("nan"),
        "ratio": sync["avg_ms"] / asyn["avg_ms"] if sync and asyn and asyn["avg_ms"] else 0.0,
        "sync_max_users": max_users_under(rows, "sync"),
        "async_max_users": max_users_under(rows, "async"),
        "largest_users": largest,
        "sync_error_pct": _error_pct(by.get(("sync", largest))),
        "async_error_pct": _error_pct(by.get(("async", largest))),
        "seed": SEED,
    }


def _error_pct(row: dict[str, Any] | None) -> float:
    return row["error_rate_pct"] if row else float("nan")
