"""The backlog and its drain: post checkouts, count what is pending, sample CPU while
consumers work through it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import text

from bench.load import CLIENTS, Clients, checkout_body
from bench.procs import BenchStack, PostgresCpu, cpu_by_process


def pending(stack: BenchStack) -> int:
    return int(
        stack.scalar("SELECT COUNT(*) FROM checkouts WHERE status NOT IN ('completed', 'failed')")
    )


def pending_jobs(stack: BenchStack, after_checkout: int = 0) -> int:
    return int(
        stack.scalar(
            "SELECT COUNT(*) FROM jobs WHERE status IN ('queued', 'scheduled', 'active') "
            "AND checkout_id > :after",
            after=after_checkout,
        )
    )


def database_work(stack: BenchStack) -> dict[str, int]:
    """PostgreSQL's own counters for the bench database: transactions committed, rows
    written, sessions opened (a pool that closes its burst connections opens one per
    burst). A backend reports them at most once a second while busy (up to 10 s late
    once idle) and when it exits, so read them after stopping the writers."""
    with stack.engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT xact_commit, tup_inserted, tup_updated, tup_deleted, sessions "
                "FROM pg_stat_database WHERE datname = current_database()"
            )
        ).one()
    names = ("commits", "inserted", "updated", "deleted", "sessions")
    return dict(zip(names, map(int, row), strict=True))


def wait_drained(stack: BenchStack, timeout: float, say: Callable[[str], None]) -> int:
    deadline = time.monotonic() + timeout
    last = time.monotonic()
    while time.monotonic() < deadline:
        left = pending(stack)
        if left == 0:
            return 0
        if time.monotonic() - last > 5:
            say(f"  draining: {left} checkouts not final yet")
            last = time.monotonic()
        time.sleep(0.25)
    return pending(stack)


def fill_backlog(stack: BenchStack, size: int, skus: list[str], ids: list[str]) -> int:
    """Post checkouts (consumers stopped) until ``size`` wait, adding their ids to ``ids``;
    returns the pending count."""
    missing = size - pending(stack)

    async def post_all() -> None:
        gate = asyncio.Semaphore(16)
        async with Clients(CLIENTS) as clients:

            async def one(n: int) -> None:
                async with gate:
                    async with clients[n].post(
                        f"{stack.base_url}/api/checkout", json=checkout_body(skus[n % len(skus)], n)
                    ) as response:
                        body = await response.json(content_type=None)
                        if response.status == 202:
                            ids.append(body["data"]["jobId"])

            await asyncio.gather(*(one(n) for n in range(missing)))

    if missing > 0:
        asyncio.run(post_all())
    return pending(stack)


def sample_drain(
    stack: BenchStack,
    timeout: float,
    say: Callable[[str], None],
    on_first: Callable[[], None] = lambda: None,
    after_checkout: int = 0,
) -> list[dict[str, Any]]:
    """Until no job is pending (emails included): finished jobs and CPU per process,
    every 0.25 s. ``on_first`` runs once the first job finished (the consumers are up)."""
    samples: list[dict[str, Any]] = []
    base = None
    postgres = PostgresCpu(stack)
    deadline = time.monotonic() + timeout
    last_say = time.monotonic()
    while True:
        left = pending_jobs(stack, after_checkout)
        finished = int(
            stack.scalar(
                "SELECT COUNT(*) FROM jobs WHERE finished_at IS NOT NULL AND checkout_id > :after",
                after=after_checkout,
            )
        )
        cpu = cpu_by_process(stack, postgres, ("orders", "payments", "notifications"))
        samples.append({"at": time.monotonic(), "pending": left, "finished": finished, "cpu": cpu})
        if base is None:
            base = finished
        elif finished > base >= 0:
            base = -1
            on_first()
        if left == 0 or time.monotonic() > deadline:
            return samples
        if time.monotonic() - last_say > 5:
            say(f"  draining: {left} jobs to go, {pending(stack)} checkouts not final")
            last_say = time.monotonic()
        time.sleep(0.25)
