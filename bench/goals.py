"""The issue's goals and the seed's table, judged from a run's figures (never asserted)."""

from __future__ import annotations

from typing import Any

from bench.audit import failures
from bench.live import describe as describe_live
from bench.report import SEED, max_users_under
from bench.system import GOAL_STEADY_RATE, burst_met, goal_burst, steady_orders_per_s

LIVE_P99_MS = 100.0  # step event → browser, with 1,000 progress streams open


def system_goals(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The system phase's goals (bench.system), first in the list."""
    system = data.get("system")
    if not system:
        return []
    clean = not failures(data["audit"])
    steady, burst = system["steady_rate"], goal_burst(system)
    orders_per_s = steady_orders_per_s(system) or 0.0
    out = [
        {
            "goal": "steady: >= 200 orders/s end to end with checkout p99 < 100 ms, all final "
            "within 10 s, the pipeline keeping up",
            "met": orders_per_s >= 200,
            "measured": f"{steady:g}/s held, {orders_per_s:,.0f} orders/s end to end"
            + (" (every rate tried held)" if system["steady_topped"] else ""),
        },
        {
            "goal": "burst: 400 checkouts/s for 10 s, all 202, p99 < 250 ms, all final, audit zero",
            "met": burst_met(burst) and clean,
            "measured": (
                f"{burst['rate']:g}/s for {burst['seconds']:g} s: p99 {burst['p99_ms']:,.0f} ms, "
                f"{burst['errors']} errors, {burst['not_final']} not final, drained "
                + ("-" if burst["drain_s"] is None else f"{burst['drain_s']:.1f} s")
                + f" after the last; audit {'clean' if clean else 'NOT clean'}"
            ),
        },
    ]
    live = system.get("live")
    if live:
        out.append(
            {
                "goal": "live progress under load: p99 < 100 ms with 1,000 streams open",
                "met": bool(
                    live["streams_asked"] >= 1000  # its events: made while that many were open
                    and live["rate"] >= GOAL_STEADY_RATE  # during the steady goal's load
                    and live["events"] > 0
                    and live["delay_p99_ms"] < LIVE_P99_MS
                    and not live["errors"]
                ),
                "measured": f"{live['rate']:g} checkouts/s for {live['seconds']:g} s: "
                + describe_live(live),
            }
        )
    shipped = next((r for r in system["confirmation"] if r["latencies"] == "shipped"), None)
    if shipped:
        out.append(
            {
                "goal": "shipped simulated latencies at 100 checkouts/s: submit→final p95 <= 3 s",
                "met": shipped["rate"] >= 100
                and shipped["final_p95_ms"] <= 3000
                and not shipped["not_final"],
                "measured": f"p95 {shipped['final_p95_ms'] / 1000:.2f} s at {shipped['rate']:g}/s "
                f"(floor p95 {shipped['floor']['p95_ms'] / 1000:.2f} s)",
            }
        )
    return out


def goals(data: dict[str, Any]) -> list[dict[str, Any]]:
    rows = {(r["mode"], r["users"]): r for r in data["users"]}
    out = system_goals(data)
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
            "goal": "pipeline with zero latency >= 400 orders/s end to end",
            "met": ops >= 400,
            "measured": f"{ops:.1f} orders/s",
        }
    )
    logcost = micro.get("logging")
    out.append(
        {
            "goal": "logging at the shipped level costs the web at most a tenth",
            "met": bool(logcost and logcost["cost"] <= 0.10),
            "measured": (
                f"{100 * logcost['cost']:+.0f} % web CPU a checkout at INFO vs WARNING"
                if logcost
                else "not measured"
            ),
        }
    )
    s1000, a1000 = rows.get(("sync", 1000)), rows.get(("async", 1000))
    if s1000 and a1000:
        floor = seed_floor_ms(data.get("time_factor", 1.0))
        out.append(
            {
                "goal": "seed latencies, 1,000 shoppers: async completes >= the sync mode's "
                "orders/s, submit→final p50 <= 1.3 x the floor",
                "met": a1000["orders_completed_per_s"] >= s1000["orders_completed_per_s"]
                and a1000["final_p50_ms"] <= 1.3 * floor,
                "measured": f"async {a1000['orders_completed_per_s']:.1f} vs sync "
                f"{s1000['orders_completed_per_s']:.1f} orders/s; p50 "
                f"{a1000['final_p50_ms'] / 1000:.2f} s vs floor {floor / 1000:.2f} s",
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


def seed_floor_ms(factor: float) -> float:
    """The seed's steps' mean latencies summed (validate, payment, order, inventory)."""
    return (750 + 4000 + 1500 + 1500) * factor


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
