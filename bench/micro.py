"""Micro-benchmarks, each a ratio of two figures measured in the same run:

- checkout 202 capacity vs a bare Flask "one LPUSH + 202" endpoint (same gunicorn
  settings), both under an open-model arrival-rate sweep, the consumers stopped;
- the pipeline with zero simulated latency (the backlog the capacity sweep left,
  drained by restarted consumers) vs raw Huey no-op tasks on the same consumer flags;
- CPU ms per order by process (web, each consumer, PostgreSQL), with py-spy flame
  graphs when py-spy is installed.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bench.drain import database_work, fill_backlog, pending, sample_drain, wait_drained
from bench.load import checkout_body, run_rate
from bench.procs import BenchStack, finish, flame
from bench.report import capacity, summarize
from orders.db import utcnow


def sweep(
    url: str,
    body_for: Callable[[int], dict[str, Any]],
    rates: list[float],
    step_s: float,
    endpoint: str,
    say: Callable[[str], None],
    limit_ms: float = 100,
    refine: int = 0,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Step the arrival rate up until two steps in a row miss p99 < ``limit_ms`` with
    no errors (one noisy step does not end the sweep), or one misses with its median
    over the limit too (saturated, not noise: a higher rate only adds checkouts for
    the pipeline phase to drain). Then ``refine`` bisections between the highest rate
    that passed and the lowest above it that missed: the capacity is known to within
    that gap / 2**refine, not to within a whole step of the list."""
    steps, ids = [], []

    def step(rate: float) -> dict[str, Any]:
        result = asyncio.run(run_rate(url, body_for, rate=rate, duration=step_s, timeout=10))
        row = {"endpoint": endpoint, "rate": rate, **summarize(result, [], 0)}
        steps.append(row)
        ids.extend(result.job_ids)
        say(
            f"  {endpoint} @ {rate:g}/s: p50 {row['p50_ms']:.1f} ms, p99 {row['p99_ms']:.1f} ms, "
            f"{row['errors']} errors"
        )
        time.sleep(0.5)
        return row

    misses = 0
    for rate in rates:
        row = step(rate)
        misses = misses + 1 if not _passed(row, limit_ms) else 0
        if misses == 2 or (misses and row["p50_ms"] >= limit_ms):
            break
    passed = capacity(steps, limit_ms)
    above = [s["rate"] for s in steps if s["rate"] > passed and not _passed(s, limit_ms)]
    if passed and above:
        low, high = passed, min(above)
        for _ in range(refine):
            middle = round((low + high) / 2)
            if middle in (low, high):
                break
            if _passed(step(middle), limit_ms):
                low = middle
            else:
                high = middle
    return steps, ids


def _passed(row: dict[str, Any], limit_ms: float) -> bool:
    return bool(row["p99_ms"] < limit_ms and not row["errors"])


def run_micro(
    stack: BenchStack,
    profile: dict[str, Any],
    out: Path,
    stem: str,
    skus: list[str],
    say: Callable[[str], None],
) -> tuple[dict[str, Any], list[str]]:
    threads = profile["micro_threads"]
    step_s = profile["capacity_step_s"]
    say("micro: checkout capacity (open model), consumers stopped")
    wait_drained(stack, profile["drain_timeout_s"], say)  # the backlog is ours alone
    stack.stop_workers()
    first_id = int(stack.scalar("SELECT COALESCE(MAX(id), 0) FROM checkouts"))
    before = pending(stack)
    web_cpu0 = stack.cpu_seconds("web")
    sessions0 = database_work(stack)["sessions"]
    checkout_url = f"{stack.base_url}/api/checkout"

    def checkout_for(n: int) -> dict[str, Any]:
        return checkout_body(skus[n % len(skus)], n)

    checkout_steps, ids = sweep(
        checkout_url,
        checkout_for,
        profile["checkout_rates"],
        step_s,
        "checkout",
        say,
        refine=profile["capacity_refine"],
    )
    web_cpu = stack.cpu_seconds("web") - web_cpu0
    # counted as they end: the web's burst connections, closed as they were given back
    sweep_sessions = database_work(stack)["sessions"] - sessions0
    swept = len(ids)  # the checkouts web_cpu was spent on
    # the web's flame graph in a window of its own: py-spy takes CPU from the box, so
    # running it during the sweep handicapped the checkout against the bare endpoint
    # (each of its checkouts joins the backlog drained below: kept short)
    say(f"micro: web flame graph (checkouts at 50/s for {profile['flame_s']:g} s, not measured)")
    spy = flame(stack.pid("web"), profile["flame_s"], out / f"{stem}-flame-web.svg")
    profiled = asyncio.run(
        run_rate(checkout_url, checkout_for, rate=50, duration=profile["flame_s"], timeout=10)
    )
    finish(spy)
    ids += profiled.job_ids
    say("micro: bare LPUSH endpoint capacity")
    bare_steps, _ = sweep(
        f"{stack.bare_url}/bare/enqueue",
        lambda n: {"n": n},
        profile["bare_rates"],
        step_s,
        "bare LPUSH",
        say,
        refine=profile["capacity_refine"],
    )
    cap_checkout = capacity(checkout_steps, 100)
    cap_bare = capacity(bare_steps, 100)
    topped = {
        "checkout": _at_top(cap_checkout, profile["checkout_rates"]),
        "bare": _at_top(cap_bare, profile["bare_rates"]),
    }

    backlog = fill_backlog(stack, profile["pipeline_orders"], skus, ids) - before
    say(
        f"micro: pipeline with zero latency draining a backlog of {backlog} checkouts "
        f"({threads} threads and {threads} kept database connections per consumer)"
    )
    started = utcnow()
    work0 = database_work(stack)
    # Alone on the box now: one kept connection per thread. With fewer kept than
    # threads, SQLAlchemy closes each burst connection as it is given back: a pool of
    # 4 kept + 4 burst opened ~1,000 PostgreSQL sessions while 8 threads drained 1,500
    # orders (33.6-35.8 orders/s; 8 + 0: 27 sessions, 39.3-39.4 orders/s).
    stack.restart_workers(
        DB_POOL_SIZE=str(threads),
        DB_MAX_OVERFLOW="0",
        SIM_TIME_FACTOR="0",
        ORDERS_CONCURRENCY=str(threads),
        PAYMENTS_CONCURRENCY=str(threads),
        NOTIFICATIONS_CONCURRENCY=str(threads),
    )
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

    say(f"micro: Huey no-op tasks on the same consumer flags (-k thread -w {threads})")
    noop_per_s = noop_rate(stack, profile["noop_tasks"], threads)
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
            "web (POST /api/checkout, 202)": 1000 * web_cpu / max(1, swept),
            "orders consumer (reserve, create order, inventory)": 1000 * cpu["orders"] / done,
            "payments consumer (charge)": 1000 * cpu["payments"] / done,
            "notifications consumer (email)": 1000 * cpu["notifications"] / done,
            "postgres (backends of the bench database)": 1000 * cpu["postgres"] / done,
        }
    result = {
        "capacity_steps": [  # by rate: the bisection's steps among the list's
            *sorted(checkout_steps, key=lambda row: row["rate"]),
            *sorted(bare_steps, key=lambda row: row["rate"]),
        ],
        "checkout_capacity_per_s": cap_checkout,
        "bare_capacity_per_s": cap_bare,
        "capacity_ratio": cap_checkout / cap_bare if cap_bare else 0.0,
        "capacity_at_top_of_sweep": topped,
        "sweep_sessions_closed": sweep_sessions,
        "pipeline_backlog": backlog,
        "pipeline_orders_per_s": orders_per_s,
        "pipeline_not_drained": left,
        "noop_tasks_per_s": noop_per_s,
        "pipeline_jobs_per_s": orders_per_s * 5,
        "cpu_ms_per_order": per_order,
        "database_work_per_order": db_per_order,
        "drain_sessions_opened": drain_sessions,
        "flame_graphs": sorted(p.name for p in out.glob(f"{stem}-flame-*.svg")),
    }
    result["lines"] = [
        f"checkout capacity (p99 < 100 ms, 0 errors): {_at_least(topped['checkout'])}"
        f"{cap_checkout:g}/s vs bare LPUSH {_at_least(topped['bare'])}{cap_bare:g}/s = "
        f"{100 * result['capacity_ratio']:.0f} % (goal >= 40 %); the web opened and closed "
        f"{sweep_sessions} PostgreSQL sessions during the checkout sweep",
        f"pipeline, zero latency: {orders_per_s:.1f} orders/s end to end ({done} orders, "
        f"5 jobs each = {orders_per_s * 5:.0f} jobs/s) vs Huey no-op {noop_per_s:.0f} tasks/s "
        f"= {100 * orders_per_s * 5 / noop_per_s if noop_per_s else 0:.0f} % of the broker's "
        "task rate (goal >= 150 orders/s)",
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


def _at_top(capacity_per_s: float, rates: list[float]) -> bool:
    """A capacity equal to the sweep's top rate is a lower bound: nothing above was tried."""
    return bool(rates) and capacity_per_s == rates[-1]


def _at_least(topped: bool) -> str:
    return "at least " if topped else ""


def noop_rate(stack: BenchStack, n: int, threads: int) -> float:
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
    stack.start_noop(threads)
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
