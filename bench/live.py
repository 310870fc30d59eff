"""Live progress under load: how late a step's event reaches the browser while the
steady load runs and ``live_streams`` progress streams (quick and full: 1,000) are
open on the shop's SSE endpoint (``GET /api/orders/status/<jobId>/stream``).

How that many streams are really open while the load runs, their events made by the
running pipeline:

- **Standing streams.** Just before the load, with the consumers stopped, the bench
  places ``live_streams`` checkouts (``POST /api/checkout``, as the load does) and
  opens a stream on each, paced like a crowd of browsers; it waits until every one
  read its first event (the state at connect), so all are open at once, every one on
  a checkout whose pipeline has not run yet. Then the consumers start (the Procfile's
  commands, as shipped) and, as soon as a stream reads a step change, the load
  starts: those checkouts' steps run, and their events are written and streamed,
  while the load runs.
- **The load's own.** An open-model checkout load at the rate the caller gives
  (:func:`bench.system.live_rate`: the steady goal's 200/s, or the steady rate the
  phase found if lower; zero simulated latency, as the steady runs), each accepted
  checkout followed by a stream opened right after its 202, as the shop's checkout
  page does.

The browsers are a process of their own (:class:`bench.streams.Browsers`): real
sockets to the real gunicorn, one client address per stream, each read until the
server ends it on the checkout's final status. The figure is the delay from the event
row's ``created_at`` to the client's read, p50 / p99 / max, of the events made while
the load ran (from the first due request to the last) *and* at least
``live_streams`` streams were open (as the standing streams end, the load's own may
not make up for them: for how many of the load's seconds that held is reported); a
stream's first event is the state at connect, not a change, and is left out. Beside
it: the p99 of every event made during the load, the streams open at once (at the
load's start, the most and the fewest while it ran), events read, streams that ended
on a final status, streams that failed (refused or broken); and, when the PostgreSQL
server records commit times, how the delay splits at the event's commit
(:func:`bench.streams.commit_split`); and the cores each of the shop's processes used
while the load ran (:class:`bench.where.CpuMeter`): near the machine's count, the box
is saturated and every part of the delay includes waiting for a core. Bounded: the
streams get ``live_wait_s`` after the load to end, the rest are cut (and not final);
the caller lets the pipeline settle before its next run.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from bench.drain import fill_backlog, pending
from bench.load import CLIENTS, checkout_body, client_address, run_rate
from bench.procs import BenchStack
from bench.report import percentile
from bench.streams import Browsers, OpenStreams, commit_split, event_delays
from bench.where import CpuMeter
from tests.stack import WORKERS

OPEN_TIMEOUT_S = 60.0  # for every standing stream's first event (a shared, loaded box)
START_TIMEOUT_S = 60.0  # for the consumers to start and a first step to be streamed


def measure_live(
    stack: BenchStack, rate: float, plan: dict[str, Any], skus: list[str]
) -> tuple[dict[str, Any], list[str]]:
    """The measurement (module docstring) at ``rate`` checkouts/s. Returns its figures
    and the checkouts it placed (for the closing audit)."""
    asked, seconds, wait = plan["live_streams"], plan["live_s"], plan["live_wait_s"]
    began = time.monotonic()
    ids: list[str] = []
    stack.stop_workers()
    fill_backlog(stack, pending(stack) + asked, skus, ids)  # exactly ``asked`` more
    standing = len(ids)
    # the browsers' addresses: past the load's, one per standing stream, then reused
    browsers = Browsers(stack.port, [client_address(CLIENTS + n) for n in range(asked)])
    try:
        opened = browsers.open(list(ids), OPEN_TIMEOUT_S)
        for name in WORKERS:
            stack.start(name)
        moving = browsers.wait_moving(START_TIMEOUT_S)

        def body(n: int) -> dict[str, Any]:
            return checkout_body(skus[n % len(skus)], n)

        meter = CpuMeter(stack)
        load = asyncio.run(
            run_rate(
                f"{stack.base_url}/api/checkout",
                body,
                rate=rate,
                duration=seconds,
                timeout=10,
                on_accepted=browsers.follow,
            )
        )
        cores = meter.cores()
        ids += load.job_ids
        since, until = load.started, load.started + seconds
        streams = browsers.close(max(1.0, until + wait - time.time()))
    finally:
        browsers.stop()
    timed = event_delays(stack.engine, streams)
    open_streams = OpenStreams(streams)
    during = [(at, ms) for at, ms in timed if since <= at <= until]
    delays = [ms for at, ms in during if open_streams.at(at) >= asked]  # the goal's events
    held = open_streams.over(since, until, asked)
    errors = Counter(r["error"][:80] for r in streams if r["error"])
    latencies = [s.latency * 1000 for s in load.samples]
    row = {
        "rate": rate,
        "seconds": seconds,
        "streams_asked": asked,
        "standing": standing,
        "standing_opened": opened,
        "pipeline_moving": moving,
        "load_requests": len(load.samples),
        "load_errors": sum(not s.ok for s in load.samples),
        "load_p99_ms": percentile(latencies, 99),
        "streams": len(streams),
        "opened": sum(1 for r in streams if r["opened_at"] is not None),
        "open_at_start": held["at_start"],
        "most_open": held["most"],
        "fewest_open": held["fewest"],
        "held_s": held["held_s"],  # of the load's seconds, with ``asked`` streams open
        # events made while the load ran and ``asked`` streams were open
        "events": len(delays),
        "delay_p50_ms": percentile(delays, 50),
        "delay_p99_ms": percentile(delays, 99),
        "delay_max_ms": max(delays, default=float("nan")),
        # every event made while the load ran, and every event read
        "load_events": len(during),
        "load_delay_p99_ms": percentile([ms for _at, ms in during], 99),
        "events_all": len(timed),
        # the same events' delay in two parts, when the server records commit times
        "split": commit_split(stack.engine, streams, since, until),
        "cores": cores,  # per process, while the load ran
        "final": sum(1 for r in streams if r["final"]),
        "errors": sum(errors.values()),
        "error_kinds": dict(errors),
        "wall_s": time.monotonic() - began,  # placing, opening, the load, the streams' end
    }
    return row, ids


def describe(row: dict[str, Any]) -> str:
    """One line of figures (the progress output, the report's table, the goal)."""
    errors = ", ".join(f"{n} {kind}" for kind, n in sorted(row["error_kinds"].items()))
    return (
        f"event→read p50 {_ms(row['delay_p50_ms'])}, p99 {_ms(row['delay_p99_ms'])}, max "
        f"{_ms(row['delay_max_ms'])} over the {row['events']:,} events made while "
        f"{row['streams_asked']:,} or more streams were open ({row['held_s']:.1f} s of the "
        f"load's {row['seconds']:g} s); all {row['load_events']:,} events made during the "
        f"load: p99 {_ms(row['load_delay_p99_ms'])}; open at once: "
        f"{row['open_at_start']:,} at the load's start, most {row['most_open']:,}, fewest "
        f"{row['fewest_open']:,}; {row['final']:,} of {row['streams']:,} streams ended on a "
        f"final status; {row['errors']} errors"
        + (f" ({errors})" if errors else "")
        + _split(row)
        + _cores(row)
    )


def _split(row: dict[str, Any]) -> str:
    split = row.get("split")
    if not split:
        return ""
    return (
        f"; where it went (the server records commit times): from the event row to its "
        f"transaction's commit p50 {_ms(split['commit_p50_ms'])}, p99 "
        f"{_ms(split['commit_p99_ms'])}; from the commit to the read p50 "
        f"{_ms(split['read_p50_ms'])}, p99 {_ms(split['read_p99_ms'])} "
        f"({split['events']:,} events)"
    )


def _cores(row: dict[str, Any]) -> str:
    cores = row.get("cores")
    if not cores:
        return ""
    each = ", ".join(f"{name} {used:.2f}" for name, used in cores.items())
    total = f"{sum(cores.values()):.2f} of {os.cpu_count()}"
    return f"; cores in use while the load ran: {each} ({total})"


def _ms(value: float) -> str:
    return "-" if value != value else f"{value:,.0f} ms"  # NaN: no event


def run_live(
    stack: BenchStack,
    rate: float,
    plan: dict[str, Any],
    skus: list[str],
    say: Callable[[str], None],
) -> tuple[dict[str, Any], list[str]]:
    """:func:`measure_live` with its progress lines."""
    say(
        f"system: live progress under load, {plan['live_streams']:,} streams on checkouts "
        f"placed before the load, then {rate:g}/s for {plan['live_s']:g} s, each followed"
    )
    row, ids = measure_live(stack, rate, plan, skus)
    say(
        f"  {row['standing_opened']:,} of {row['streams_asked']:,} standing streams open at once; "
        f"load {row['load_requests']} checkouts, {row['load_errors']} errors, p99 "
        f"{row['load_p99_ms']:,.1f} ms; {row['wall_s']:.0f} s in all"
    )
    if not row["pipeline_moving"]:
        say(f"  (no step was streamed within {START_TIMEOUT_S:g} s of starting the consumers)")
    say(f"  {describe(row)}")
    return row, ids
