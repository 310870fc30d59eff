"""``python -m bench [--profile quick|full|tiny]``: the shop's benchmark.

Starts the shop as shipped (the Procfile's lines, the shipped settings) on a database
and a Redis key prefix of its own; first the system phase (every process running, an
open-model load from outside, :mod:`bench.system`), then where the time goes (sync vs
async shoppers, the checkout's capacity with the consumers stopped, the pipeline
alone); audits it, writes the report under bench/results/ and removes everything it
created. Only the simulated latencies and the load vary.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bench.audit import audit, failures
from bench.drain import wait_drained
from bench.goals import goals, versus_seed
from bench.load import run_users
from bench.micro import run_micro
from bench.procs import BenchStack, seed_env
from bench.profiles import PROFILES
from bench.report import summarize, write
from bench.system import lines as system_lines
from bench.system import run_system
from bench.where import CpuMeter, job_times
from tests.stack import postgres_database

RESULTS = Path(__file__).resolve().parent / "results"
STOCK = 10_000_000


def say(line: str) -> None:
    print(line, flush=True)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}; load generator on the same machine"
    )


def shipped_processes() -> str:
    """The Procfile's lines and what the shipped settings make of them here."""
    from orders.config import Settings
    from orders.worker import consumer_argv

    settings = Settings.from_env(
        {"DATABASE_URL": "postgresql://bench/shop", "REDIS_URL": "redis://bench:6379/0"}
    )
    lines = (Path(__file__).resolve().parent.parent / "Procfile").read_text().splitlines()
    shown = [line for line in lines if line.split(":")[0] in ("web", "payments")]
    return (
        "; ".join(shown)
        + f" (which runs: {' '.join(consumer_argv('payments', settings))}); gunicorn "
        "gevent (its choice on PostgreSQL), WEB_CONCURRENCY 2, database pool "
        f"{settings.db_pool_size}+{settings.db_max_overflow} per web worker, "
        f"{settings.worker_db_pool} per consumer; PIPELINE_BATCH {settings.pipeline_batch}, "
        f"PIPELINE_GATHER_MS {settings.pipeline_gather_ms}; "
        "LOG_LEVEL INFO"
    )


def final_times(stack: BenchStack, ids: list[str]) -> tuple[list[float], int, float]:
    """Submit-to-final seconds of these checkouts, how many completed, and their span."""
    wanted = set(ids)
    with stack.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT public_id, status, created_at, finished_at FROM checkouts "
                "WHERE finished_at IS NOT NULL"
            )
        ).all()
    mine = [r for r in rows if r[0] in wanted]
    seconds = [(r[3] - r[2]).total_seconds() for r in mine]
    completed = [r for r in mine if r[1] == "completed"]
    span = 0.0
    if completed:
        span = (max(r[3] for r in completed) - min(r[2] for r in mine)).total_seconds()
    return seconds, len(completed), span


def run(
    profile_name: str,
    out: Path = RESULTS,
    *,
    with_micro: bool = True,
    with_system: bool = True,
    admin_url: str | None = None,
    redis_url: str | None = None,
    time_factor: float | None = None,
    users: list[int] | None = None,
    phase_s: float | None = None,
    follow: str | None = None,
    modes: tuple[str, ...] = ("async", "sync"),
) -> dict[str, Any]:
    """Run a profile end to end and write its report under ``out``."""
    profile = dict(PROFILES[profile_name])
    settings = (
        ("factor", time_factor),
        ("users", users),
        ("phase_s", phase_s),
        ("follow", follow),
    )
    for key, value in settings:
        if value is not None:
            profile[key] = value
    admin_url = admin_url or os.environ.get(
        "BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    redis_url = redis_url or os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    started = datetime.now(UTC)
    stem = started.strftime("%Y-%m-%d-%H%M") + ("" if profile_name != "tiny" else "-tiny")
    factor = profile["factor"]
    data_dir = Path(tempfile.mkdtemp(prefix="shop-bench-"))
    skus = [f"BENCH-{i}" for i in range(10)]
    data: dict[str, Any] = {
        "started": started.isoformat(timespec="seconds"),
        "profile": profile_name,
        "machine": machine(),
        "time_factor": factor,
        "think_s": profile["think_s"],
        "poll_s": profile["poll_s"],
        "follow": profile["follow"],
        "phase_s": profile["phase_s"],
        "ramp_s": profile["ramp_s"],
        "latencies": "validate 0.5-1 s, payment 3-5 s, order 1-2 s, inventory 1-2 s, email 1-2 s",
        "server": (
            "the Procfile's lines with the shipped settings (only the simulated latencies "
            "vary), on PostgreSQL + Redis: " + shipped_processes()
        ),
        "load_average": {"start": os.getloadavg()},
        "users": [],
    }
    say(f"bench ({profile_name}): SIM_TIME_FACTOR={factor:g}, data in {data_dir}")
    accepted: list[str] = []
    try:
        with postgres_database(admin_url) as database_url:
            stack = BenchStack(data_dir, database_url, redis_url, **seed_env(factor))
            try:
                say("starting the Procfile's processes, as shipped (PostgreSQL + Redis) ...")
                stack.up()
                stack.start("bare")
                stack.wait_bare()
                for sku in skus:
                    stack.add_product(sku, STOCK)
                if with_system:
                    data["system"], ids = run_system(stack, profile, skus, say)
                    accepted += ids
                    for line in system_lines(data["system"]):
                        say(line)
                    stack.relaunch(seed_env(factor))
                say("where the time goes: sync vs async shoppers (closed model)")
                for mode in modes:
                    for users in profile["users"]:
                        say(
                            f"{mode}: {users} users arriving over {profile['ramp_s']:g} s, "
                            f"then {profile['phase_s']:g} s measured"
                        )
                        t0 = time.monotonic()
                        meter = CpuMeter(stack)
                        result = asyncio.run(
                            run_users(
                                stack.base_url,
                                users=users,
                                duration=profile["phase_s"],
                                sync=mode == "sync",
                                skus=skus,
                                think=profile["think_s"],
                                poll=profile["poll_s"],
                                follow_with=profile["follow"],
                                ramp=profile["ramp_s"],
                                timeout=30,
                                follow_timeout=max(60.0, 100 * factor),
                                progress=say,
                            )
                        )
                        cores = meter.cores()
                        wait_drained(stack, profile["drain_timeout_s"], say)
                        seconds, completed, span = final_times(stack, result.job_ids)
                        accepted += result.job_ids
                        row = summarize(result, seconds, completed)
                        row["orders_completed_per_s"] = completed / span if span else 0.0
                        row.update(mode=mode, users=users, wall_s=time.monotonic() - t0)
                        row.update(cores=cores, job_times=job_times(stack, result.job_ids))
                        data["users"].append(row)
                        say(
                            f"  -> avg {row['avg_ms']:.1f} ms, p99 {row['p99_ms']:.1f} ms, "
                            f"errors {row['errors']}/{row['requests']}, submit->final p95 "
                            f"{row['final_p95_ms']:.0f} ms"
                        )
                if with_micro:
                    data["micro"], ids = run_micro(stack, profile, out, stem, skus, say)
                    accepted += ids
                wait_drained(stack, profile["drain_timeout_s"], say)
                time.sleep(1)
                data["load_average"]["end"] = os.getloadavg()
                data["audit"] = audit(
                    stack.engine,
                    stack.ledger,
                    initial_stock=dict.fromkeys(skus, STOCK),
                    accepted_ids=accepted,
                )
            finally:
                stack.close()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    data["versus_seed"] = versus_seed(data["users"])
    data["goals"] = goals(data)
    paths = write(data, out, stem)
    print(paths["md"].read_text())
    bad = failures(data["audit"])
    say("AUDIT: " + ("all zero" if not bad else f"FAILED {bad}"))
    say(f"report: {paths['md']}  {paths['json']}  {paths['png']}")
    data["paths"] = {k: str(v) for k, v in paths.items()}
    return data


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="quick")
    parser.add_argument("--no-micro", action="store_true")
    parser.add_argument("--no-system", action="store_true", help="skip the system phase")
    parser.add_argument("--time-factor", type=float, help="override SIM_TIME_FACTOR")
    parser.add_argument("--users", help="override the user counts, e.g. 15,50")
    parser.add_argument("--phase-seconds", type=float, help="override the run length")
    parser.add_argument(
        "--modes", default="async,sync", help="which modes to run, e.g. async (default both)"
    )
    parser.add_argument(
        "--follow",
        choices=("stream", "poll"),
        help="how async shoppers follow their checkout (default: the profile's, stream)",
    )
    args = parser.parse_args(argv)
    if not set(args.modes.split(",")) <= {"async", "sync"}:
        parser.error("--modes takes async, sync or async,sync")
    data = run(
        args.profile,
        with_micro=not args.no_micro,
        with_system=not args.no_system,
        time_factor=args.time_factor,
        users=[int(n) for n in args.users.split(",")] if args.users else None,
        phase_s=args.phase_seconds,
        follow=args.follow,
        modes=tuple(m for m in args.modes.split(",") if m),
    )
    return 1 if failures(data["audit"]) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
