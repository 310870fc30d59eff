"""What logging at the shipped level costs the web: the same fixed-rate checkout load
on the web as shipped (``LOG_LEVEL`` unset: INFO) and on the web restarted at
``LOG_LEVEL=WARNING``, the consumers stopped; the web's CPU per checkout of each, and
the ratio (the goal: logging costs the web at most a tenth).

Each run follows a restart of the web and a second of the same load, not counted (a
fresh web fills its caches first). The runs go shipped, quiet, quiet, shipped, and
each level's figure is the mean of its two runs, so a machine that speeds up or slows
down during the phase favours neither level. The web logs nothing per checkout at
INFO, so what this measures is mostly the machine's own drift: it says how far to
trust a difference.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from bench.load import checkout_body, run_rate
from bench.procs import BenchStack
from bench.report import summarize

LEVELS = ("INFO", "WARNING", "WARNING", "INFO")  # INFO: the shipped default


def _restart_web(stack: BenchStack, level: str) -> None:
    stack.stop("web")
    if level == "INFO":
        stack.env.pop("LOG_LEVEL", None)  # as shipped: not set at all
    else:
        stack.env["LOG_LEVEL"] = level
    stack.start("web")
    stack.wait_http(120)


def _run(
    stack: BenchStack, rate: float, seconds: float, skus: list[str], ids: list[str]
) -> dict[str, Any]:
    def body(n: int) -> dict[str, Any]:
        return checkout_body(skus[n % len(skus)], n)

    url = f"{stack.base_url}/api/checkout"
    # a fresh web's first requests fill its caches (compiled statements, imports): a
    # second of the same load first, not counted
    warm = asyncio.run(run_rate(url, body, rate=rate, duration=1, timeout=10))
    ids.extend(warm.job_ids)
    time.sleep(0.5)
    cpu0 = stack.cpu_seconds("web")
    result = asyncio.run(run_rate(url, body, rate=rate, duration=seconds, timeout=10))
    cpu = stack.cpu_seconds("web") - cpu0
    ids.extend(result.job_ids)
    row = summarize(result, [], 0)
    accepted = max(len(result.job_ids), 1)
    return {**row, "cpu_ms_per_checkout": 1000 * cpu / accepted}


def run_logcost(
    stack: BenchStack,
    profile: dict[str, Any],
    skus: list[str],
    say: Callable[[str], None],
    ids: list[str],
) -> dict[str, Any]:
    """The web's CPU per checkout at INFO (shipped) and at WARNING; the web is left as
    shipped. Accepted checkouts' ids go to ``ids`` (the pipeline phase drains them)."""
    rate, seconds = profile["logcost_rate"], profile["logcost_s"]
    say(f"micro: what logging costs the web, {rate:g} checkouts/s for {seconds:g} s per level")
    runs: list[tuple[str, dict[str, Any]]] = []
    try:
        for level in LEVELS:
            _restart_web(stack, level)
            row = _run(stack, rate, seconds, skus, ids)
            runs.append((level, row))
            say(
                f"  LOG_LEVEL {level}: web {row['cpu_ms_per_checkout']:.2f} ms CPU a checkout, "
                f"p99 {row['p99_ms']:.1f} ms, {row['errors']} errors"
            )
    finally:
        if stack.env.get("LOG_LEVEL"):
            _restart_web(stack, "INFO")
    shipped = [row["cpu_ms_per_checkout"] for level, row in runs if level == "INFO"]
    quiet = [row["cpu_ms_per_checkout"] for level, row in runs if level == "WARNING"]
    info_ms = sum(shipped) / len(shipped)
    warning_ms = sum(quiet) / len(quiet)
    cost = info_ms / warning_ms - 1 if warning_ms > 0 else 0.0
    return {
        "rate": rate,
        "seconds": seconds,
        "info_cpu_ms": info_ms,
        "warning_cpu_ms": warning_ms,
        "cost": cost,
        "runs": [{"level": level, **row} for level, row in runs],
    }


def line(logcost: dict[str, Any]) -> str:
    return (
        f"logging at the shipped level (INFO) vs WARNING, {logcost['rate']:g} checkouts/s: "
        f"web {logcost['info_cpu_ms']:.2f} vs {logcost['warning_cpu_ms']:.2f} ms CPU a "
        f"checkout = {100 * logcost['cost']:+.0f} % (goal <= +10 %)"
    )
