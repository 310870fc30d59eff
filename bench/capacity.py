"""Open-model capacity sweeps, each endpoint on the same gunicorn settings with the
consumers stopped: the checkout, the bare "one LPUSH + 202" endpoint (the stack's
ceiling) and the durable floor, "one committed INSERT, then the LPUSH" (what any
checkout that records before it answers must at least do). Their ratios are
measured in the same run."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bench.bare import FLOOR_TABLE
from bench.drain import database_work
from bench.load import checkout_body, run_rate
from bench.procs import BenchStack, finish, flame
from bench.report import capacity, summarize


@dataclass
class Capacities:
    checkout: float
    bare: float
    floor: float
    steps: list[dict[str, Any]]  # by endpoint, then rate
    topped: dict[str, bool]  # which capacity is only a lower bound
    ids: list[str] = field(default_factory=list)  # the checkouts accepted (the sweep's + flame's)
    web_cpu: float = 0.0  # the web's CPU seconds during the checkout sweep
    swept: int = 0  # the checkouts it was spent on
    sessions: int = 0  # PostgreSQL sessions the web opened and closed meanwhile


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


def run_capacity(
    stack: BenchStack,
    profile: dict[str, Any],
    out: Path,
    stem: str,
    skus: list[str],
    say: Callable[[str], None],
) -> Capacities:
    """The three sweeps (and the web's flame graph, in a window of its own)."""
    step_s = profile["capacity_step_s"]
    say("micro: checkout capacity (open model), consumers stopped")
    web_cpu0 = stack.cpu_seconds("web")
    sessions0 = database_work(stack)["sessions"]
    checkout_url = f"{stack.base_url}/api/checkout"

    def checkout_for(n: int) -> dict[str, Any]:
        return checkout_body(skus[n % len(skus)], n)

    def measure(url: str, body: Callable[[int], Any], rates: str, endpoint: str) -> Any:
        return sweep(url, body, profile[rates], step_s, endpoint, say, refine=refine)

    refine = profile["capacity_refine"]
    checkout_steps, ids = measure(checkout_url, checkout_for, "checkout_rates", "checkout")
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
    bare_steps, _ = measure(f"{stack.bare_url}/bare/enqueue", _numbered, "bare_rates", "bare LPUSH")
    say("micro: durable floor capacity (one committed INSERT, then the LPUSH)")
    with stack.engine.begin() as conn:
        conn.execute(text(FLOOR_DDL))
    floor_steps, _ = measure(
        f"{stack.bare_url}/bare/record", _numbered, "floor_rates", "INSERT + LPUSH"
    )
    cap_checkout = capacity(checkout_steps, 100)
    cap_bare = capacity(bare_steps, 100)
    cap_floor = capacity(floor_steps, 100)
    topped = {
        "checkout": _at_top(cap_checkout, profile["checkout_rates"]),
        "bare": _at_top(cap_bare, profile["bare_rates"]),
        "floor": _at_top(cap_floor, profile["floor_rates"]),
    }

    steps = [
        *sorted(checkout_steps, key=lambda row: row["rate"]),
        *sorted(bare_steps, key=lambda row: row["rate"]),
        *sorted(floor_steps, key=lambda row: row["rate"]),
    ]
    return Capacities(
        cap_checkout, cap_bare, cap_floor, steps, topped, ids, web_cpu, swept, sweep_sessions
    )


def lines(found: Capacities) -> list[str]:
    """The report's lines for the sweeps."""
    topped, bare, floor, checkout = found.topped, found.bare, found.floor, found.checkout
    return [
        f"checkout capacity (p99 < 100 ms, 0 errors): {_at_least(topped['checkout'])}"
        f"{checkout:g}/s vs bare LPUSH {_at_least(topped['bare'])}{bare:g}/s = "
        f"{100 * checkout / bare if bare else 0:.0f} % (goal >= 40 %); the web opened and "
        f"closed {found.sessions} PostgreSQL sessions during the checkout sweep",
        f"durable floor (one committed INSERT, then the LPUSH; same server): "
        f"{_at_least(topped['floor'])}{floor:g}/s = {100 * floor / bare if bare else 0:.0f} % "
        f"of the bare LPUSH's; the checkout's {checkout:g}/s is "
        f"{100 * checkout / floor if floor else 0:.0f} % of the floor's",
    ]


FLOOR_DDL = (  # bench.bare's /bare/record writes here: one row, its primary key only
    f"CREATE TABLE IF NOT EXISTS {FLOOR_TABLE} (id BIGSERIAL PRIMARY KEY, "
    "job_id VARCHAR(32) NOT NULL, created_at TIMESTAMP NOT NULL DEFAULT now())"
)


def _numbered(n: int) -> dict[str, Any]:
    return {"n": n}


def _at_top(capacity_per_s: float, rates: list[float]) -> bool:
    """A capacity equal to the sweep's top rate is a lower bound: nothing above was tried."""
    return bool(rates) and capacity_per_s == rates[-1]


def _at_least(topped: bool) -> str:
    return "at least " if topped else ""
