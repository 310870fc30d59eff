"""Micro-benchmarks, each a ratio of two figures measured in the same run:

- checkout 202 capacity vs a bare Flask "one LPUSH + 202" endpoint and the durable
  floor "one committed INSERT + LPUSH" (same gunicorn settings), each under an
  open-model arrival-rate sweep, the consumers stopped (:mod:`bench.capacity`);
- the pipeline with zero simulated latency (the backlog the capacity sweep left,
  drained by restarted consumers) vs raw Huey no-op tasks on the same consumer flags;
- what logging at the shipped level costs the web (:mod:`bench.logcost`);
- CPU ms per order by process (web, each consumer, PostgreSQL), with py-spy flame
  graphs when py-spy is installed.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bench.capacity import lines as capacity_lines
from bench.capacity import run_capacity
from bench.drain import database_work, fill_backlog, pending, sample_drain, wait_drained
from bench.logcost import line as logcost_line
from bench.logcost import run_logcost
from bench.procs import BenchStack, finish, flame
from orders.db import utcnow


def run_micro(
    stack: BenchStack,
    profile: dict[str, Any],
    out: Path,
    stem: str,
    skus: list[str],
    say: Callable[[str], None],
) -> tuple[dict[str, Any], list[str]]:
    wait_drained(stack, profile["drain_timeout_s"], say)  # the backlog is ours alone
    stack.stop_workers()
    first_id = int(stack.scalar("SELECT COALESCE(MAX(id), 0) FROM checkouts"))
    before = pending(stack)
    found = run_capacity(stack, profile, out, stem, skus, say)
    ids = found.ids
    logging = run_logcost(stack, profile, skus, say, ids)

    backlog = fill_backlog(stack, profile["pipeline_orders"], skus, ids) - before
    say(
        f"micro: pipeline with zero latency draining a backlog of {backlog} checkouts "
        "(the consumers as shipped)"
    )
    started = utcnow()
    work0 = database_work(stack)
    stack.restart_workers(SIM_TIME_FACTOR="0")
    spies: list[subprocess.Popen[bytes] | None] = []
    path = out / f"{stem}-flame-orders-consumer.svg"
    samples = sample_drain(
        stack,
        profile["drain_timeout_s"],
        say,
        lambda: spies.append(flame(stack.pid("orders"), profile["flame_s"], path)),
        first_id,
    )
    left = pending(stack)
    for spy in spies:
        finish(spy)
    # from the first job done (consumers up) to the last (emails included)
    first = next((s for s in samples if s["finished"] > samples[0]["finished"]), samples[-1])
    last = samples[-1]
    cpu = {name: last["cpu"][name] - first["cpu"][name] for name in last["cpu"]}
    with stack.engine.connect() as conn:
        done, begin, end = conn.execute(
            text(
                "SELECT COUNT(DISTINCT checkout_id), MIN(finished_at), MAX(finished_at) "
                "FROM jobs WHERE finished_at >= :started AND checkout_id > :after"
            ),
            {"started": started, "after": first_id},
        ).one()
    span = (end - begin).total_seconds() if done and end and begin else 0.0
    orders_per_s = done / span if span > 0 else 0.0

    say("micro: Huey no-op tasks on the same consumer command")
    noop_per_s = noop_rate(stack, profile["noop_tasks"])
    db_per_order: dict[str, float] = {}
    drain_sessions = 0
    if done and left == 0:  # nothing left for the consumers: stop them, so they report
        stack.stop_workers()
        time.sleep(1)
        work = {key: value - work0[key] for key, value in database_work(stack).items()}
        drain_sessions = work.pop("sessions")  # a count for the phase, not per order
        db_per_order = {key: value / done for key, value in work.items()}

    per_order = {}
    if done:
        per_order = {
            "web (POST /api/checkout, 202)": 1000 * found.web_cpu / max(1, found.swept),
            "orders consumer (reserve, create order, inventory)": 1000 * cpu["orders"] / done,
            "payments consumer (charge)": 1000 * cpu["payments"] / done,
            "notifications consumer (email)": 1000 * cpu["notifications"] / done,
            "postgres (backends of the bench database)": 1000 * cpu["postgres"] / done,
        }
    result = {
        "capacity_steps": found.steps,  # by endpoint, then rate (bisection's included)
        "checkout_capacity_per_s": found.checkout,
        "bare_capacity_per_s": found.bare,
        "capacity_ratio": found.checkout / found.bare if found.bare else 0.0,
        "floor_capacity_per_s": found.floor,
        "capacity_at_top_of_sweep": found.topped,
        "sweep_sessions_closed": found.sessions,
        "pipeline_backlog": backlog,
        "pipeline_orders_per_s": orders_per_s,
        "pipeline_not_drained": left,
        "noop_tasks_per_s": noop_per_s,
        "pipeline_jobs_per_s": orders_per_s * 5,
        "cpu_ms_per_order": per_order,
        "database_work_per_order": db_per_order,
        "drain_sessions_opened": drain_sessions,
        "flame_graphs": sorted(p.name for p in out.glob(f"{stem}-flame-*.svg")),
        "logging": logging,
    }
    result["lines"] = [
        *capacity_lines(found),
        f"pipeline, zero latency: {orders_per_s:.1f} orders/s end to end ({done} orders, "
        f"5 jobs each = {orders_per_s * 5:.0f} jobs/s) vs Huey no-op {noop_per_s:.0f} tasks/s "
        f"= {100 * orders_per_s * 5 / noop_per_s if noop_per_s else 0:.0f} % of the broker's "
        "task rate (goal >= 400 orders/s)",
        logcost_line(logging),
        "flame graphs: " + (", ".join(result["flame_graphs"]) or "none (py-spy not installed)"),
    ]
    if db_per_order:
        result["lines"].append(
            "PostgreSQL's work per order in that phase (its statistics, every process "
            f"included): {db_per_order['commits']:.1f} transactions committed, rows "
            f"{db_per_order['inserted']:.1f} inserted, {db_per_order['updated']:.1f} updated, "
            f"{db_per_order['deleted']:.1f} deleted; {drain_sessions} "
            "sessions opened (a pool that closes burst connections opens one per burst)"
        )
    return result, ids


def noop_rate(stack: BenchStack, n: int) -> float:
    import importlib
    import os
    from unittest import mock

    # bench.bare reads its broker from the environment at import (it is also the
    # consumers' target); scope the variables to this import so nothing leaks into
    # the rest of the process (the test suite runs this in a shared worker).
    env = {"REDIS_URL": stack.redis_url or "", "QUEUE_PREFIX": stack.prefix}
    with mock.patch.dict(os.environ, env):
        from bench import bare

        bare = importlib.reload(bare)

    counter = f"{stack.prefix}-noop-count"
    client = stack.redis()
    client.delete(counter)
    for _ in range(n):
        bare.noop(counter)
    stack.start_noop()
    deadline = time.monotonic() + 120
    first = None
    while time.monotonic() < deadline:
        count = int(client.get(counter) or 0)
        if count and first is None:
            first = (time.monotonic(), count)
        if count >= n:
            break
        time.sleep(0.01)
    end = time.monotonic()
    stack.stop("noop")
    client.close()
    if first is None or end <= first[0]:
        return 0.0
    return (n - first[1]) / (end - first[0])
