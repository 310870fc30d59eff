"""How many progress streams one box holds, and how late their events arrive.

    python bench/sse_streams.py --streams 1000 --worker-class gevent \\
        --postgres-url postgresql://postgres@127.0.0.1:5432/test --redis-url redis://127.0.0.1:6379/0

Starts the real shop (``tests.stack.Stack``: the Procfile's lines, on 127.0.0.1) with
the chosen gunicorn worker class and the consumers as shipped (jobs in flight, leases;
zero simulated latency, rate limits off: one client places every checkout, and the
stream caps above N: the server is measured, not its caps). It places N checkouts
while the consumers are still stopped, opens one SSE stream per checkout (asyncio
sockets, HTTP/1.0) and waits until every stream got its first event, so N streams are
open at once. Then it starts the consumers and follows every stream to its end.

Reports: streams that got their first event, streams that delivered every step and
closed on ``completed``, and the delay from a step change (the event row's
``created_at``) to the moment the client read that event: p50 / p99 / max; and what
the streams cost the web processes in CPU: per stream opened (from the first request
to every stream's first event) and per event delivered after that (the wake-ups, the
reads, the writes and each stream's end). Bounded by ``--deadline`` seconds after the
consumers start. The stream client and the delay are :mod:`bench.streams`', which the
system phase's live progress under load (:mod:`bench.live`) uses too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.procs import tree_cpu_seconds  # noqa: E402
from bench.report import percentile  # noqa: E402
from bench.streams import OPEN_PACE_S, StreamResult, event_delays, follow  # noqa: E402
from orders.config import Settings  # noqa: E402
from tests.stack import WORKERS, Stack, postgres_database  # noqa: E402

SHIPPED_PACE = (
    ("LEASE_SECONDS", "lease_seconds"),
    ("REQUEUE_AFTER_SECONDS", "requeue_after_seconds"),
    ("SWEEP_INTERVAL_SECONDS", "sweep_interval_seconds"),
    ("RETRY_DELAY_SECONDS", "retry_delay_seconds"),
)


def place_checkouts(stack: Stack, skus: list[str], count: int) -> list[str]:
    def one(n: int) -> str:
        return stack.checkout(skus[n % len(skus)])

    with ThreadPoolExecutor(4) as pool:  # few DB connections: the server is shared
        return list(pool.map(one, range(count)))


@dataclass
class WebCpu:
    """CPU seconds the web processes used opening the streams, then following them."""

    opening: float = 0.0
    following: float = 0.0


async def run_streams(
    stack: Stack, job_ids: list[str], open_timeout: float, deadline: float, cpu: WebCpu
) -> tuple[list[StreamResult], float, float]:
    def web_cpu() -> float:
        return tree_cpu_seconds(stack.processes["web"].pid)

    results = [StreamResult(j) for j in job_ids]
    tasks = []
    start = web_cpu()
    for result in results:
        tasks.append(asyncio.create_task(follow(stack.port, result)))
        await asyncio.sleep(OPEN_PACE_S)
    opened_at = time.monotonic()
    try:
        await asyncio.wait_for(
            asyncio.gather(*(r.first.wait() for r in results)), timeout=open_timeout
        )
    except TimeoutError:
        pass
    open_seconds = time.monotonic() - opened_at
    opened = web_cpu()
    cpu.opening = opened - start
    print(f"  {sum(1 for r in results if r.events)} streams got their first event", flush=True)
    for name in WORKERS:
        stack.start(name)
    consumers_at = time.monotonic()
    _done, pending = await asyncio.wait(tasks, timeout=deadline)
    for task in pending:
        task.cancel()
    cpu.following = web_cpu() - opened
    return results, open_seconds, time.monotonic() - consumers_at


def report(
    stack: Stack, results: list[StreamResult], cpu: WebCpu, args: argparse.Namespace
) -> dict:
    delays = [ms for _at, ms in event_delays(stack.engine, [r.plain() for r in results])]
    first_events = sum(1 for r in results if r.events)
    later_events = sum(max(0, len(r.events) - 1) for r in results)
    errors: dict[str, int] = {}
    for r in results:
        if r.error:
            errors[r.error[:80]] = errors.get(r.error[:80], 0) + 1
    incomplete = [r for r in results if not r.completed]
    samples = []
    for r in incomplete[:5]:
        status = stack.scalar(
            "SELECT stage || ' ' || COALESCE(error_code, '') FROM checkouts WHERE public_id = :j",
            j=r.job_id,
        )
        last = r.events[-1][1] if r.events else None
        samples.append(f"{r.job_id}: db={status} last={last} closed={r.closed} err={r.error}")
    return {
        "streams": len(results),
        "worker_class": args.worker_class,
        "backend": "postgres+redis" if args.postgres_url else "sqlite",
        "env": args.env,
        "products": args.products,
        "first_event": first_events,
        "completed": sum(1 for r in results if r.completed),
        "events": len(delays),
        "delay_ms_p50": round(percentile(delays, 50), 1),
        "delay_ms_p99": round(percentile(delays, 99), 1),
        "delay_ms_max": round(max(delays), 1) if delays else None,
        # what the streams cost the web: opening one, and each event read after its first
        "web_cpu_ms_per_stream_opened": _per(cpu.opening, first_events),
        "web_cpu_ms_per_event": _per(cpu.following, later_events),
        "errors": errors,
        "incomplete": samples,
    }


def _per(seconds: float, count: int) -> float | None:
    return round(1000 * seconds / count, 3) if count else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--worker-class", choices=("gthread", "gevent"), default="gevent")
    parser.add_argument("--threads", type=int, default=16, help="gthread threads per worker")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--postgres-url", help="admin URL; omit for the embedded SQLite mode")
    parser.add_argument("--redis-url")
    parser.add_argument(
        "--products", type=int, default=50, help="spread the orders (one SKU is a hot row)"
    )
    parser.add_argument("--open-timeout", type=float, default=30)
    parser.add_argument("--deadline", type=float, default=60)
    parser.add_argument("--out", help="write the JSON result here too")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        help="extra KEY=VALUE for the shop, e.g. SSE_DB_POOL=8",
    )
    args = parser.parse_args()

    env = {
        "WEB_CONCURRENCY": str(args.workers),
        "GUNICORN_WORKER_CLASS": args.worker_class,
        "GUNICORN_THREADS": str(args.threads),
        "GUNICORN_WORKER_CONNECTIONS": str(max(1000, args.streams + 200)),
        # the consumers as shipped (jobs in flight, leases, the sweeper's pace), not the
        # test stack's short leases
        **{name: str(getattr(Settings, field)) for name, field in SHIPPED_PACE},
        # one client opening every stream: measure the server, not its caps
        "SSE_MAX_STREAMS": str(args.streams + 100),
        "SSE_MAX_STREAMS_PER_CLIENT": "0",
        "SSE_MAX_SECONDS": "3600",
        **dict(item.split("=", 1) for item in args.env),
    }
    with ExitStack() as exits:
        data_dir = Path(exits.enter_context(tempfile.TemporaryDirectory(prefix="sse-bench-")))
        if args.postgres_url:
            url = exits.enter_context(postgres_database(args.postgres_url))
            stack = Stack(data_dir, url, args.redis_url, **env)
        else:
            stack = Stack(data_dir, f"sqlite:///{data_dir}/shop.db", None, **env)
        exits.callback(stack.close)
        stack.up("web")
        run = uuid.uuid4().hex[:6]
        skus = [f"SSE-{run}-{n}" for n in range(args.products)]
        for sku in skus:
            stack.add_product(sku, stock=args.streams * 2)
        print(f"placing {args.streams} checkouts (consumers stopped)", flush=True)
        job_ids = place_checkouts(stack, skus, args.streams)
        print(f"opening {args.streams} streams ({args.worker_class})", flush=True)
        cpu = WebCpu()
        results, open_s, run_s = asyncio.run(
            run_streams(stack, job_ids, args.open_timeout, args.deadline, cpu)
        )
        summary = report(stack, results, cpu, args)
        summary["open_seconds"] = round(open_s, 1)
        summary["run_seconds"] = round(run_s, 1)
        summary["load_average_1m"] = round(os.getloadavg()[0], 1)  # the box is shared
        print(json.dumps(summary, indent=2))
        if summary["completed"] < summary["streams"]:
            print("--- web log (tail)\n" + stack.log("web")[-3000:])
        if args.out:
            Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
