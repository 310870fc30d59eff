"""Open-model capacity sweeps, each endpoint on the same gunicorn settings with the
consumers stopped: the checkout, the bare "one LPUSH + 202" endpoint (the stack's
ceiling) and the durable floor, "one committed INSERT, then the LPUSH" (what any
checkout that records before it answers must at least do; its rows are written
together under load, as the checkout's are). Their ratios are measured in the same
run."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Generator
from contextlib import suppress
from dataclasses import dataclass
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
    ids: list[str]  # the checkouts accepted (warm-up, sweep and flame graph)
    web_cpu: float  # the web's CPU seconds during the sweeps (only checkouts reach it)
    swept: int  # the checkouts it was spent on
    sessions: int  # PostgreSQL sessions opened and closed meanwhile (burst ones)


Plan = Generator[float, dict[str, Any], None]


@dataclass(frozen=True)
class Target:
    endpoint: str
    url: str
    body_for: Callable[[int], dict[str, Any]]
    rates: list[float]


def plan(rates: list[float], limit_ms: float = 100, refine: int = 0) -> Plan:
    """The rates one sweep tries, each chosen once the last one's step is sent in.

    Step the arrival rate up until two steps in a row miss p99 < ``limit_ms`` with
    no errors (one noisy step does not end the sweep; a step that missed with its
    median fast is measured once more first: ``_measured``), or one misses with its median
    over the limit too (saturated, not noise: a higher rate only adds checkouts for
    the pipeline phase to drain). Then ``refine`` bisections between the highest rate
    that passed and the lowest above it that missed: the capacity is known to within
    that gap / 2**refine, not to within a whole step of the list."""
    steps = []
    misses = 0
    for rate in rates:
        row = yield from _measured(rate, limit_ms, first=not steps)
        steps.append(row)
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
            if _passed((yield from _measured(middle, limit_ms)), limit_ms):
                low = middle
            else:
                high = middle


def _measured(
    rate: float, limit_ms: float, first: bool = False
) -> Generator[float, dict[str, Any], dict[str, Any]]:
    """One step at ``rate``; measured once more if it missed while most of its answers
    were fast (median under a tenth of the limit): a stall of the shared machine (a
    few hundred ms in which every process waits), not a server that cannot keep up.
    A sweep's ``first`` step, its rate far below what the server holds, is measured
    once more whenever it missed: the machine was still busy with the phase before
    (PostgreSQL writing out what the system phase wrote), and two misses from the
    start would end the sweep at 0. Both steps are reported; the second counts."""
    row = yield rate
    if not _passed(row, limit_ms) and (first or row["p50_ms"] < limit_ms / 10):
        row = yield rate
    return row


def sweep_together(
    targets: list[Target],
    step_s: float,
    say: Callable[[str], None],
    limit_ms: float = 100,
    refine: int = 0,
) -> dict[str, tuple[list[dict[str, Any]], list[str]]]:
    """Every target's sweep (:func:`plan`), taking turns: one step of each per round.

    The machine is shared and its speed drifts (the bare endpoint's capacity moved
    between 1,300 and 2,375/s across runs on the same code): sweeps run one after the
    other put each endpoint in a different stretch, and the ratio measured the drift.
    In turns, a slow stretch lands on every endpoint alike; the round's order rotates,
    so what a step inherits from the one before it (a database still busy with the
    last step's writes) is spread too. Each target's steps, and the job ids its 202s
    carried."""
    found: dict[str, tuple[list[dict[str, Any]], list[str]]] = {
        t.endpoint: ([], []) for t in targets
    }
    plans = {t.endpoint: plan(t.rates, limit_ms, refine) for t in targets}
    upcoming: dict[str, float] = {}
    for name, rates in plans.items():
        with suppress(StopIteration):
            upcoming[name] = next(rates)
    turn = 0
    while upcoming:
        # each round starts one further along: none always follows the same one
        for target in targets[turn % len(targets) :] + targets[: turn % len(targets)]:
            if target.endpoint not in upcoming:
                continue
            steps, ids = found[target.endpoint]
            row = _step(target, upcoming[target.endpoint], step_s, say, ids)
            steps.append(row)
            try:
                upcoming[target.endpoint] = plans[target.endpoint].send(row)
            except StopIteration:
                del upcoming[target.endpoint]
        turn += 1
    return found


def _step(
    target: Target, rate: float, step_s: float, say: Callable[[str], None], ids: list[str]
) -> dict[str, Any]:
    result = asyncio.run(
        run_rate(target.url, target.body_for, rate=rate, duration=step_s, timeout=10)
    )
    row = {"endpoint": target.endpoint, "rate": rate, **summarize(result, [], 0)}
    ids.extend(result.job_ids)
    say(
        f"  {target.endpoint} @ {rate:g}/s: p50 {row['p50_ms']:.1f} ms, "
        f"p99 {row['p99_ms']:.1f} ms, {row['errors']} errors"
    )
    time.sleep(0.5)
    return row


def _passed(row: dict[str, Any], limit_ms: float) -> bool:
    return bool(row["p99_ms"] < limit_ms and not row["errors"])


ENDPOINTS = {"checkout": "checkout", "bare": "bare LPUSH", "floor": "INSERT + LPUSH"}


def run_capacity(
    stack: BenchStack,
    profile: dict[str, Any],
    out: Path,
    stem: str,
    skus: list[str],
    say: Callable[[str], None],
) -> Capacities:
    """The three sweeps, in turns (:func:`sweep_together`), then the web's flame graph
    in a window of its own: py-spy takes CPU from the box, so running it during the
    sweeps handicapped the checkout against the others."""
    say(
        "micro: capacity (open model), consumers stopped: the checkout, the bare LPUSH and "
        "the durable floor (one committed INSERT, then the LPUSH), one step of each in turn"
    )
    with stack.engine.begin() as conn:
        conn.execute(text(FLOOR_DDL))
    checkout_url = f"{stack.base_url}/api/checkout"

    def checkout_for(n: int) -> dict[str, Any]:
        return checkout_body(skus[n % len(skus)], n)

    targets = [
        Target(ENDPOINTS["checkout"], checkout_url, checkout_for, profile["checkout_rates"]),
        Target(
            ENDPOINTS["bare"], f"{stack.bare_url}/bare/enqueue", _numbered, profile["bare_rates"]
        ),
        Target(
            ENDPOINTS["floor"], f"{stack.bare_url}/bare/record", _numbered, profile["floor_rates"]
        ),
    ]
    # a second of each, not measured: every process has its connections open (the
    # shop's web opens its pool at start; the floor's app when first used) and the
    # checkouts it accepts join the others (drained and audited)
    warmed = []
    for target in targets:
        warm = asyncio.run(
            run_rate(target.url, target.body_for, rate=target.rates[0], duration=1, timeout=10)
        )
        warmed += warm.job_ids if target.url == checkout_url else []
    web_cpu0 = stack.cpu_seconds("web")  # only checkouts reach the web meanwhile
    sessions0 = database_work(stack)["sessions"]
    found = sweep_together(
        targets, profile["capacity_step_s"], say, refine=profile["capacity_refine"]
    )
    web_cpu = stack.cpu_seconds("web") - web_cpu0
    # counted as they end: burst connections (the web's or the floor's), closed as they
    # were given back
    sessions = database_work(stack)["sessions"] - sessions0
    ids = found[ENDPOINTS["checkout"]][1]
    swept = len(ids)  # the checkouts web_cpu was spent on
    # each of its checkouts joins the backlog the pipeline phase drains: kept short
    say(f"micro: web flame graph (checkouts at 50/s for {profile['flame_s']:g} s, not measured)")
    spy = flame(stack.pid("web"), profile["flame_s"], out / f"{stem}-flame-web.svg")
    profiled = asyncio.run(
        run_rate(checkout_url, checkout_for, rate=50, duration=profile["flame_s"], timeout=10)
    )
    finish(spy)
    caps = {key: capacity(found[name][0], 100) for key, name in ENDPOINTS.items()}
    topped = {key: _at_top(caps[key], profile[f"{key}_rates"]) for key in ENDPOINTS}
    steps = [row for name in ENDPOINTS.values() for row in sorted(found[name][0], key=_by_rate)]
    return Capacities(
        caps["checkout"],
        caps["bare"],
        caps["floor"],
        steps,
        topped,
        [*warmed, *ids, *profiled.job_ids],
        web_cpu,
        swept,
        sessions,
    )


def _by_rate(row: dict[str, Any]) -> float:
    return float(row["rate"])


def lines(found: Capacities) -> list[str]:
    """The report's lines for the sweeps."""
    topped, bare, floor, checkout = found.topped, found.bare, found.floor, found.checkout
    return [
        f"checkout capacity (p99 < 100 ms, 0 errors): {_at_least(topped['checkout'])}"
        f"{checkout:g}/s vs bare LPUSH {_at_least(topped['bare'])}{bare:g}/s = "
        f"{100 * checkout / bare if bare else 0:.0f} % (goal >= 40 %); {found.sessions} "
        "PostgreSQL sessions were opened and closed during the sweeps",
        f"durable floor (one committed INSERT, then the LPUSH; rows written together under "
        "load, as the checkout's; same server): "
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
