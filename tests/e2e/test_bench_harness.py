"""The benchmark harness on a tiny run: its audit and its report cannot rot.

Nothing here is timed: the figures are whatever the machine gives; the test checks
that the harness measures, audits and writes its report, and that the audit is clean.
"""

import json

import pytest
from sqlalchemy import create_engine, text

from orders.environ import database_url_for_sqlalchemy
from tests.conftest import POSTGRES_URL, REDIS_URL

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.xdist_group("bench"),
    # every phase of the real harness, restarts included: minutes on a busy CI machine
    pytest.mark.timeout(900),
]


def test_tiny_bench_run_audits_clean_and_writes_the_report(tmp_path):
    from bench.__main__ import run

    data = run("tiny", tmp_path, admin_url=POSTGRES_URL, redis_url=REDIS_URL)

    audit = data["audit"]
    assert {k: v for k, v in audit.items() if k.endswith("_must_be_0") and v} == {}
    assert audit["checkouts"] == audit["accepted_by_client"] > 0
    assert audit["completed"] == audit["captures"] == audit["checkouts"]
    rows = {(r["mode"], r["users"]): r for r in data["users"]}
    assert set(rows) == {("async", 3), ("sync", 3)}
    for row in rows.values():
        assert row["requests"] > 0 and row["errors"] == 0
        assert row["p50_ms"] <= row["p99_ms"]
        assert row["final_p95_ms"] > 0
    # where the time went: every step of every checkout was timed, and the async
    # run's pipeline ran in the orders consumer (the sync run's, in the web)
    steps = {"reserve-stock", "process-payment", "create-order", "update-inventory"}
    for row in rows.values():
        times = row["job_times"]
        assert steps | {"send-order-confirmation"} <= set(times)
        assert all(times[kind]["jobs"] == row["requests"] for kind in steps)
        assert all(t["wait_p50_ms"] <= t["wait_p95_ms"] for t in times.values())
    assert rows[("async", 3)]["cores"]["orders"] > rows[("sync", 3)]["cores"]["orders"]
    # sync answers only once the order exists: its response includes the pipeline
    assert rows[("sync", 3)]["avg_ms"] > rows[("async", 3)]["avg_ms"]
    micro = data["micro"]
    assert micro["pipeline_backlog"] > 0 and micro["pipeline_not_drained"] == 0
    assert micro["pipeline_orders_per_s"] > 0 and micro["noop_tasks_per_s"] > 0
    endpoints = {s["endpoint"] for s in micro["capacity_steps"]}
    assert endpoints == {"checkout", "bare LPUSH", "INSERT + LPUSH"}
    # every request answered 202 (latency is the machine's, not asserted): the floor's
    # INSERT committed every time
    assert all(s["requests"] > 0 and s["errors"] == 0 for s in micro["capacity_steps"])
    # PostgreSQL's counters: the steps share their transactions in batches (fewer than
    # one per order), and an order writes its order, lines, holds, payment, email, jobs
    # and events, and updates its five jobs twice each (claimed, closed)
    work = micro["database_work_per_order"]
    assert work["commits"] > 0 and work["inserted"] >= 10 and work["updated"] >= 10
    # what logging costs the web: the shipped level and WARNING twice each, all 202
    logging = micro["logging"]
    assert [run["level"] for run in logging["runs"]] == ["INFO", "WARNING", "WARNING", "INFO"]
    assert all(run["requests"] > 0 and run["errors"] == 0 for run in logging["runs"])
    assert logging["info_cpu_ms"] > 0 and logging["warning_cpu_ms"] > 0

    # the system phase: the shop as shipped, loaded open-model from outside
    system = data["system"]
    steady = system["steady"]
    assert [r["rate"] for r in steady][:1] == [20] and system["steady_rate"] in (0, 20, 40)
    runs = [*steady, system["burst"], *system["confirmation"]]
    for row in runs:
        # every accepted checkout came back final (nothing lost), whatever the latency
        assert row["accepted"] == row["final"] > 0 and row["not_final"] == 0
        assert row["drain_s"] is not None and row["final_p50_ms"] <= row["final_p95_ms"]
    assert system["burst"]["rate"] == 2 * (system["steady_rate"] or 20)
    shipped, seed = system["confirmation"]
    assert (shipped["latencies"], seed["latencies"]) == ("shipped", "seed")
    # the floor: the steps' simulated latencies summed (shipped: 100-300 ms for
    # validate, order and inventory, 300-800 ms for the payment)
    assert 600 < shipped["floor"]["p50_ms"] < shipped["floor"]["p95_ms"] < 1700
    assert shipped["final_p50_ms"] > 600  # no checkout beat the simulated work
    # live progress under load: every standing stream asked for was open at once before
    # the load, each of the load's checkouts got its own stream, every stream read the
    # pipeline's events and ended on its checkout's final status
    live = system["live"]
    assert live["streams_asked"] == live["standing"] == live["standing_opened"] == 50
    assert live["rate"] == (system["steady_rate"] or 20) and live["load_requests"] > 0
    assert live["streams"] == live["standing"] + live["load_requests"] - live["load_errors"]
    assert live["errors"] == 0 and live["opened"] == live["final"] == live["streams"]
    assert 0 < live["open_at_start"] <= live["most_open"] <= live["streams"]
    assert live["fewest_open"] <= live["open_at_start"]
    assert 0 <= live["held_s"] <= live["seconds"]
    assert live["events"] <= live["load_events"] <= live["events_all"] and live["load_events"] > 0
    assert live["load_delay_p99_ms"] > 0  # read after it was made (one machine, one clock)
    # where the delay went: only a server that records commit times can say
    if _records_commit_times():
        split = live["split"]
        assert split["events"] > 0 and split["commit_p50_ms"] >= 0 and split["read_p50_ms"] > 0
    else:
        assert live["split"] is None
    judged = {g["goal"]: g for g in data["goals"]}
    live_goal = judged["live progress under load: p99 < 100 ms with 1,000 streams open"]
    assert not live_goal["met"]  # 50 streams are not 1,000, whatever the delay

    md = (tmp_path / f"{data['paths']['md'].rsplit('/', 1)[1]}").read_text()
    # the report leads with the system figures; the parts follow as where the time goes
    assert md.index("## The whole shop, as shipped") < md.index("# Where the time goes")
    assert md.index("# Where the time goes") < md.index("## Sync vs async")
    assert "| figure | seed sync | seed async | ours sync | ours async |" in md
    assert "stuck_checkouts_must_be_0: 0" in md
    assert "| live progress under load: 50 progress streams asked" in md
    assert "live progress under load: p99 < 100 ms with 1,000 streams open —" in md
    assert "| async | 3 | create-order |" in md and "## Where the time went" in md
    saved = json.loads((tmp_path / data["paths"]["json"].rsplit("/", 1)[1]).read_text())
    assert saved["audit"] == audit
    png = tmp_path / data["paths"]["png"].rsplit("/", 1)[1]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _records_commit_times() -> bool:
    engine = create_engine(database_url_for_sqlalchemy(POSTGRES_URL))
    try:
        with engine.connect() as conn:
            return conn.execute(text("SHOW track_commit_timestamp")).scalar() == "on"
    finally:
        engine.dispose()


def test_the_bench_loads_the_shop_only_once_every_consumer_has_started(tmp_path):
    """A consumer still starting takes a CPU second or so from the first seconds of a
    load: the bench's stack waits for every consumer's first heartbeat, and gives up
    (with their logs) if one never comes."""
    from bench.procs import BenchStack
    from orders.db import utcnow
    from tests.stack import WORKERS, postgres_database

    assert POSTGRES_URL and REDIS_URL
    with postgres_database(POSTGRES_URL) as url:
        stack = BenchStack(tmp_path, url, REDIS_URL)
        try:
            stack.release()
            since = utcnow()
            with pytest.raises(RuntimeError, match="did not start"):
                stack.wait_consumers(since, timeout=1)  # none was started
            for name in WORKERS:
                stack.start(name)
            stack.wait_consumers(since)
            started = stack.scalar(
                "SELECT COUNT(DISTINCT queue) FROM worker_heartbeats WHERE started_at >= :since",
                since=since,
            )
            assert started == len(WORKERS)  # orders, payments, notifications, maintenance
        finally:
            stack.close()
