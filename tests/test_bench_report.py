"""The benchmark report's arithmetic (bench/report.py), without running a benchmark."""

from __future__ import annotations

from typing import Any

from bench.load import PhaseResult, Sample
from bench.report import summarize


def test_errors_are_counted_by_kind_and_rates_use_the_phase_length() -> None:
    result = PhaseResult("async-2", duration=2.0, other_requests=2)
    result.samples = [
        Sample(0.0, 0.010, 202, True),
        Sample(0.1, 0.030, 202, True),
        Sample(0.2, 0.020, 503, False),
        Sample(0.3, 30.0, 0, False, "timeout"),
        Sample(0.4, 0.001, 0, False, "ServerDisconnectedError"),
        Sample(0.5, 0.002, 0, False, "ServerDisconnectedError"),
    ]
    row = summarize(result, [0.5, 1.5], completed=2)
    assert row["requests"] == 6 and row["errors"] == 4
    assert row["error_rate_pct"] == 400 / 6
    assert row["error_kinds"] == {"HTTP 503": 1, "timeout": 1, "ServerDisconnectedError": 2}
    assert row["checkouts_per_s"] == 3.0
    assert row["http_requests_per_s"] == 4.0  # 6 checkouts + 2 follow requests over 2 s
    assert row["orders_completed_per_s"] == 1.0


def test_response_times_come_from_after_the_ramp_and_errors_from_the_whole_run() -> None:
    result = PhaseResult("async-3", duration=10.0, ramp=5.0)
    result.samples = [
        Sample(0.5, 3.000, 202, True),  # arriving shoppers meet a cold server
        Sample(4.9, 0.200, 0, False, "timeout"),
        Sample(5.0, 0.010, 202, True),
        Sample(9.0, 0.020, 202, True),
        Sample(14.0, 0.030, 202, True),
    ]
    row = summarize(result, [], completed=0)
    assert row["p99_ms"] == 30.0 and row["max_ms"] == 30.0  # 10, 20, 30: the steady part
    assert row["avg_ms"] == 20.0
    assert row["ramp_requests"] == 2 and row["ramp_p99_ms"] == 3000.0
    assert row["requests"] == 5 and row["errors"] == 1  # the ramp's error still counts
    assert row["checkouts_per_s"] == 0.3  # 3 steady checkouts over the 10 measured seconds


def test_a_capacity_at_the_top_of_its_sweep_is_a_bound_not_a_pass() -> None:
    from bench.goals import goals

    def capacity_goal(topped: dict[str, bool], ratio: float) -> dict[str, object]:
        micro = {"capacity_ratio": ratio, "capacity_at_top_of_sweep": topped}
        data = {"users": [], "micro": micro, "audit": {}}
        return next(g for g in goals(data) if g["goal"].startswith("checkout capacity"))

    plain = capacity_goal({"checkout": False, "bare": False}, 0.5)
    assert plain["met"] and plain["measured"] == "50 %"
    # the bare endpoint never missed: its capacity is higher, the ratio lower than shown
    capped = capacity_goal({"checkout": False, "bare": True}, 0.5)
    assert not capped["met"] and "at most" in capped["measured"]
    floor = capacity_goal({"checkout": True, "bare": False}, 0.5)
    assert floor["met"] and "at least" in floor["measured"]


def _fake(latencies):  # type: ignore[no-untyped-def]
    """A fake run_rate: ``latencies(url, rate)``, once a step, gives the step's
    latency (s) of its n-th request."""

    async def server(url, body_for, *, rate, duration, timeout):  # type: ignore[no-untyped-def]
        latency = latencies(url, rate)
        samples = [Sample(n / rate, latency(n), 202, True) for n in range(int(rate * duration))]
        return PhaseResult(f"rate-{rate:g}", duration, samples)

    return server


def _server(capacities: dict[str, float], calls: list[str]):  # type: ignore[no-untyped-def]
    """Each URL holds its capacity, and is saturated above it."""

    def latencies(url, rate):  # type: ignore[no-untyped-def]
        calls.append(url)
        return lambda _n: 0.005 if rate <= capacities[url] else 0.5

    return _fake(latencies)


def _sweep(monkeypatch, capacities, targets, refine=0):  # type: ignore[no-untyped-def]
    import bench.capacity as sweeps

    calls: list[str] = []
    monkeypatch.setattr(sweeps, "run_rate", _server(capacities, calls))
    monkeypatch.setattr(sweeps.time, "sleep", lambda _s: None)
    found = sweeps.sweep_together(targets, 1.0, lambda _l: None, refine=refine)
    return found, calls


def test_the_capacity_sweep_bisects_between_the_last_pass_and_the_first_miss(
    monkeypatch,
) -> None:
    """A server that holds 337/s: the list's steps say 300, two halvings say 337."""
    from bench.capacity import Target
    from bench.report import capacity

    target = Target("checkout", "url", dict, [150, 300, 450, 600])
    found, _ = _sweep(monkeypatch, {"url": 337}, [target])
    assert [s["rate"] for s in found["checkout"][0]] == [150, 300, 450]  # a saturated miss
    found, _ = _sweep(monkeypatch, {"url": 337}, [target], refine=2)
    steps = found["checkout"][0]
    assert [s["rate"] for s in steps] == [150, 300, 450, 375, 338]
    assert capacity(steps, 100) == 300  # 338 missed: between 300 and 338
    found, _ = _sweep(monkeypatch, {"url": 337}, [target], refine=4)
    assert capacity(found["checkout"][0], 100) == 328  # 375, 338 missed, 319, 328 held


def test_a_step_that_missed_with_fast_answers_is_measured_once_more(monkeypatch) -> None:
    """A stall of the shared machine (a few slow answers, the median fast) at 400/s:
    that step is measured again and the sweep goes on; a stall that is there again
    counts as a miss. A saturated miss (the median slow too) is not measured again."""
    import bench.capacity as sweeps
    from bench.report import capacity

    def stalling(stalls: dict[float, int]):  # type: ignore[no-untyped-def]
        def latencies(_url, rate):  # type: ignore[no-untyped-def]
            stalled = stalls.get(rate, 0) > 0
            stalls[rate] = stalls.get(rate, 0) - 1
            if rate > 700:  # saturated
                return lambda _n: 0.5
            return lambda n: 0.3 if stalled and n % 20 == 0 else 0.005

        return _fake(latencies)

    monkeypatch.setattr(sweeps.time, "sleep", lambda _s: None)
    target = sweeps.Target("checkout", "url", dict, [200, 400, 600, 800, 1000])
    monkeypatch.setattr(sweeps, "run_rate", stalling({400: 1}))
    steps = sweeps.sweep_together([target], 1.0, lambda _l: None)["checkout"][0]
    assert [(s["rate"], s["p99_ms"] < 100) for s in steps] == [
        (200, True),
        (400, False),
        (400, True),
        (600, True),
        (800, False),
    ]
    assert capacity(steps, 100) == 600
    # stalled twice at 400 and once at 600: two misses in a row end the sweep there
    monkeypatch.setattr(sweeps, "run_rate", stalling({400: 2, 600: 2}))
    steps = sweeps.sweep_together([target], 1.0, lambda _l: None)["checkout"][0]
    assert [s["rate"] for s in steps] == [200, 400, 400, 600, 600]
    assert capacity(steps, 100) == 200


def test_a_sweep_whose_first_step_missed_measures_it_once_more(monkeypatch) -> None:
    """The first rate is far below capacity: a miss there, even a slow one (the
    machine busy with the phase before), is measured again before it counts; a
    second miss at the first rate still ends the sweep."""
    import bench.capacity as sweeps
    from bench.report import capacity

    def busy_at_first(slow: int):  # type: ignore[no-untyped-def]
        left = [slow]

        def latencies(_url, rate):  # type: ignore[no-untyped-def]
            left[0] -= 1
            return lambda _n: 0.2 if left[0] >= 0 or rate > 700 else 0.005

        return _fake(latencies)

    monkeypatch.setattr(sweeps.time, "sleep", lambda _s: None)
    target = sweeps.Target("checkout", "url", dict, [300, 600, 900])
    monkeypatch.setattr(sweeps, "run_rate", busy_at_first(1))
    steps = sweeps.sweep_together([target], 1.0, lambda _l: None)["checkout"][0]
    held = [s["rate"] for s in steps if s["p99_ms"] < 100]
    assert [s["rate"] for s in steps] == [300, 300, 600, 900] and held == [300, 600]
    assert capacity(steps, 100) == 600
    monkeypatch.setattr(sweeps, "run_rate", busy_at_first(3))
    steps = sweeps.sweep_together([target], 1.0, lambda _l: None)["checkout"][0]
    assert [s["rate"] for s in steps] == [300, 300]  # missed again, saturated: the end
    assert capacity(steps, 100) == 0


def test_the_sweeps_take_turns_and_each_finds_what_it_would_alone(monkeypatch) -> None:
    """One step of each endpoint per round, so a slow stretch of the shared machine
    lands on all of them, the round's order rotating; each sweep's steps are the ones
    it takes alone, and one that ends early leaves the others going."""
    from bench.capacity import Target

    checkout = Target("checkout", "c", dict, [150, 300, 450, 600])
    bare = Target("bare LPUSH", "b", dict, [400, 800, 1200, 1600, 2000])
    capacities = {"c": 337, "b": 1500}

    def rates(found):  # type: ignore[no-untyped-def]
        return {
            name: [(s["rate"], s["p99_ms"]) for s in steps] for name, (steps, _) in found.items()
        }

    alone = {}
    for target in (checkout, bare):
        alone.update(rates(_sweep(monkeypatch, capacities, [target], refine=2)[0]))
    found, calls = _sweep(monkeypatch, capacities, [checkout, bare], refine=2)

    assert rates(found) == alone
    assert [r for r, _ in alone["checkout"]] == [150, 300, 450, 375, 338]
    assert [r for r, _ in alone["bare LPUSH"]] == [400, 800, 1200, 1600, 1400, 1500]
    # in turns while both run, each round starting one further along; then the bare
    # sweep's last halving alone, once the checkout's has ended
    assert calls == ["c", "b", "b", "c", "c", "b", "b", "c", "c", "b", "b"]


def _run(rate: float, p99: float, drain: float | None, **extra: object) -> dict[str, object]:
    row: dict[str, object] = {
        "rate": rate,
        "seconds": 10,
        "requests": int(rate * 10),
        "errors": 0,
        "p50_ms": 5.0,
        "p99_ms": p99,
        "accepted": int(rate * 10),
        "final": int(rate * 10),
        "not_final": 0,
        "drain_s": drain,
        "final_p50_ms": 900.0,
        "final_p95_ms": 1800.0,
        "orders_per_s": rate,
    }
    row.update(extra)
    return row


def test_a_steady_rate_holds_only_if_every_checkout_also_finished_in_time() -> None:
    from bench.system import held

    assert held(_run(200, 40.0, 2.0), 10)
    assert not held(_run(200, 140.0, 2.0), 10)  # the web was slow
    assert not held(_run(200, 40.0, 12.0, seconds=60), 10)  # the pipeline fell behind
    assert not held(_run(200, 40.0, None), 10)  # some never finished
    assert not held(_run(200, 40.0, 2.0, errors=1), 10)
    # a backlog that grew the whole run: drained within 10 s, but 3 s after a 10 s run
    # means the pipeline finished 200 / 1.3 = 154 of the 200 a second
    assert not held(_run(200, 40.0, 3.0), 10)
    assert held(_run(200, 40.0, 3.0, seconds=20), 10)


def test_the_floor_is_the_sum_of_the_steps_simulated_latencies() -> None:
    from bench.procs import SHIPPED_LATENCY, ZERO_LATENCY, seed_env
    from bench.system import floor_ms

    shipped = floor_ms(SHIPPED_LATENCY)  # 100-300 x 3 steps + 300-800 for the payment
    assert 1100 < shipped["p50_ms"] < 1200 < shipped["p95_ms"] < 1500
    seed = floor_ms(seed_env(1.0))  # 0.5-1 + 3-5 + 1-2 + 1-2 s: mean 7.75 s
    assert 7500 < seed["p50_ms"] < 8000
    assert floor_ms(ZERO_LATENCY) == {"p50_ms": 0.0, "p95_ms": 0.0}


def test_the_report_leads_with_the_system_figures_and_judges_their_goals() -> None:
    from bench.goals import goals
    from bench.report import markdown

    floor = {"p50_ms": 1150.0, "p95_ms": 1400.0}
    system = {
        "load_average_start": (1.5, 1.2, 1.0),
        "load_average_end": (2.5, 2.0, 1.5),
        "steady": [_run(100, 30.0, 1.0), _run(200, 60.0, 2.0), _run(300, 400.0, None)],
        "steady_rate": 200,
        "steady_topped": False,
        "burst": _run(400, 180.0, 8.5),
        "confirmation": [
            _run(100, 20.0, 2.0, latencies="shipped", floor=floor, describe="shipped ones"),
            _run(50, 20.0, 9.0, latencies="seed", floor=floor, describe="the seed's"),
        ],
    }
    audit = {"lost_checkouts_must_be_0": 0}
    data = {
        "started": "now",
        "profile": "quick",
        "machine": "2 cores",
        "server": "the Procfile",
        "latencies": "seed",
        "time_factor": 0.1,
        "think_s": 5.0,
        "poll_s": 1.0,
        "phase_s": 10,
        "users": [],
        "versus_seed": {
            key: 0 for key in ("at_users", "sync_max_users", "async_max_users", "largest_users")
        }
        | {k: float("nan") for k in ("sync_avg_ms", "async_avg_ms", "ratio")}
        | {"sync_error_pct": 0.0, "async_error_pct": 0.0},
        "system": system,
        "audit": audit,
    }
    judged = {g["goal"].split(":")[0]: g for g in goals(data)}
    assert judged["steady"]["met"]
    assert judged["steady"]["measured"] == "200/s held, 200 orders/s end to end"
    system["steady"][1]["orders_per_s"] = 169.0  # held, the pipeline a fifth behind
    steady = next(g for g in goals(data) if g["goal"].startswith("steady"))
    assert not steady["met"] and steady["measured"] == "200/s held, 169 orders/s end to end"
    system["steady"][1]["orders_per_s"] = 200.0
    assert judged["burst"]["met"]
    assert judged["shipped simulated latencies at 100 checkouts/s"]["met"]  # p95 1.8 s
    system["burst"] = _run(400, 300.0, 8.5)  # one slow answer in a hundred: not met
    data["goals"] = goals(data)
    assert not next(g for g in data["goals"] if g["goal"].startswith("burst"))["met"]
    # twice a faster steady rate missed the bar: the goal is judged on its own rate
    bursts = {"burst": _run(600, 300.0, 12.0), "goal_burst": _run(400, 120.0, 6.0)}
    burst = next(g for g in goals({**data, "system": {**system, **bursts}}) if "400" in g["goal"])
    assert burst["met"] and burst["measured"].startswith("400/s for 10 s: p99 120 ms")
    assert "| burst at the goal's rate (400/s for 10 s) | p99 120 ms" in markdown(
        {**data, "system": {**system, **bursts}}
    )

    md = markdown(data)
    assert md.index("## The whole shop, as shipped") < md.index("# Where the time goes")
    assert "| steady rate: checkout p99 < 100 ms" in md
    assert "| 200 checkouts/s (200 orders/s end to end) |" in md
    assert "| steady | 300 | 10 | 3000 | 0 | 5.0 | 400.0 | 3000/3000 | - |" in md
    assert "floor p50 1.15 s, p95 1.40 s" in md and "Load average 1.50/1.20/1.00" in md


def _stream(opened: float | None, ended: float | None) -> dict[str, Any]:
    return {"opened_at": opened, "ended_at": ended, "events": []}


def test_streams_open_at_once_are_counted_over_the_load_only() -> None:
    from bench.streams import OpenStreams

    streams = OpenStreams(
        [
            _stream(0.0, 12.0),  # standing: open before the load, ends during it
            _stream(1.0, 15.0),  # standing: outlives the load
            _stream(2.0, 3.0),  # ended before the load
            _stream(None, 4.0),  # refused: never open
            _stream(11.0, 11.5),  # the load's: opened and ended during it
            _stream(11.2, 13.0),  # the load's: outlives the standing one
        ]
    )
    assert [streams.at(t) for t in (0.5, 2.5, 3.5, 11.3, 12.5, 20.0)] == [1, 3, 2, 4, 2, 0]
    over = streams.over(10.0, 14.0, at_least=3)
    assert {k: over[k] for k in ("at_start", "most", "fewest")} == {
        "at_start": 2,
        "most": 4,
        "fewest": 1,
    }
    assert abs(over["held_s"] - 1.0) < 1e-9  # 3 or more from 11.0 to 12.0


def test_live_progress_runs_at_the_steady_goals_rate_unless_less_held() -> None:
    from bench.system import live_rate

    assert live_rate(300) == 200  # the highest rate held leaves no room: the goal's
    assert live_rate(200) == 200
    assert live_rate(150) == 150  # the goal is then not met whatever the delay


def _live(**extra: Any) -> dict[str, Any]:
    row = {
        "rate": 200,
        "seconds": 10,
        "streams_asked": 1000,
        "streams": 3000,
        "open_at_start": 1000,
        "most_open": 1250,
        "fewest_open": 400,
        "held_s": 7.5,
        "events": 12000,
        "load_events": 15000,
        "load_delay_p99_ms": 95.0,
        "delay_p50_ms": 20.0,
        "delay_p99_ms": 80.0,
        "delay_max_ms": 150.0,
        "final": 3000,
        "errors": 0,
        "error_kinds": {},
    }
    row.update(extra)
    return row


def test_live_progress_is_met_only_with_1000_streams_open_and_every_stream_served() -> None:
    from bench.goals import system_goals
    from bench.system import lines

    def judged(live: dict[str, Any]) -> bool:
        system = {
            "steady_rate": 200,
            "steady_topped": False,
            "burst": _run(400, 180.0, 8.5),
            "confirmation": [],
            "live": live,
        }
        goal = next(g for g in system_goals({"system": system, "audit": {}}) if "live" in g["goal"])
        assert goal["goal"] == "live progress under load: p99 < 100 ms with 1,000 streams open"
        return bool(goal["met"])

    assert judged(_live())
    assert not judged(_live(delay_p99_ms=100.0))
    assert not judged(_live(streams_asked=50))  # the tiny profile's: not 1,000
    assert not judged(_live(rate=150))  # a machine that held less than the steady goal
    assert not judged(_live(events=0, delay_p99_ms=float("nan")))  # never 1,000 open
    assert not judged(_live(errors=1, error_kinds={"HTTP/1.1 429 TOO MANY REQUESTS": 1}))
    system = {
        "load_average_start": (1.0, 1.0, 1.0),
        "load_average_end": (1.0, 1.0, 1.0),
        "steady": [_run(200, 60.0, 4.0)],
        "steady_rate": 200,
        "steady_topped": False,
        "burst": _run(400, 180.0, 8.5),
        "confirmation": [],
        "live": _live(),
    }
    table = "\n".join(lines(system))
    assert "| live progress under load: 1,000 progress streams asked" in table
    assert "p99 80 ms, max 150 ms over the 12,000 events made while 1,000 or more" in table
    assert "(7.5 s of the load's 10 s); all 15,000 events made during the load: p99 95" in table
    assert table.index("| live progress") < table.index("| burst at twice that")


def test_the_live_delay_splits_at_the_event_commit_when_the_server_records_it() -> None:
    from bench.live import describe
    from bench.streams import split

    # (created, committed, read) epoch seconds: three made during the load (10 to 20 s),
    # one before it and one after
    events = [
        (10.0, 10.2, 10.21),
        (11.0, 11.01, 11.05),
        (12.0, 12.05, 12.07),
        (9.0, 9.1, 9.2),
        (20.5, 20.6, 20.7),
    ]
    figures = split(events, 10.0, 20.0)
    assert figures is not None and figures["events"] == 3
    rounded = {key: round(value) for key, value in figures.items()}
    assert rounded == {
        "events": 3,
        "commit_p50_ms": 50,
        "commit_p99_ms": 200,
        "read_p50_ms": 20,
        "read_p99_ms": 40,
    }
    assert split(events, 30.0, 40.0) is None  # nothing made then
    assert "where it went" not in describe(_live())  # the server did not record commits
    text = describe(_live(split=figures))
    assert "to its transaction's commit p50 50 ms, p99 200 ms;" in text
    assert "from the commit to the read p50 20 ms, p99 40 ms (3 events)" in text


def test_the_live_line_says_how_busy_the_box_was_while_the_load_ran() -> None:
    import os

    from bench.live import describe

    assert "cores in use" not in describe(_live())  # not metered
    text = describe(_live(cores={"web": 1.04, "orders": 0.25, "postgres": 0.5}))
    assert text.endswith(
        f"; cores in use while the load ran: web 1.04, orders 0.25, postgres 0.50 "
        f"(1.79 of {os.cpu_count()})"
    )
