"""Benchmark profiles: tiny (the e2e test), quick (`make bench`), full (`make bench-full`).

``system`` is the system phase's (bench.system): the steady rates it steps through
(each for ``step_s``, every checkout then given ``drain_limit_s`` to finish), one
``refine`` halving between the last rate that held and the first that did not; live
progress under load (bench.live: ``live_streams`` progress streams open while the
steady load runs for ``live_s``, then ``live_wait_s`` for the streams to end); the
burst (twice the steady rate, ``burst_s``), and the time to confirmation at a fixed
rate with the shipped simulated latencies and with the seed's.
"""

from __future__ import annotations

from typing import Any

PROFILES: dict[str, dict[str, Any]] = {
    "tiny": {  # the e2e test's: seconds, not minutes
        "system": {
            "rates": [20, 40],
            "step_s": 2,
            "refine": 0,
            "live_streams": 50,
            "live_s": 2,
            "live_wait_s": 30,
            "burst_s": 2,
            "drain_limit_s": 10,
            "confirm_rate": 10,
            "confirm_s": 2,
            "seed_rate": 5,
            "seed_s": 2,
            "seed_factor": 0.05,
        },
        "users": [3],
        "phase_s": 3,
        "ramp_s": 1,
        "factor": 0.02,
        "think_s": 0.2,
        "poll_s": 0.1,
        "follow": "stream",
        "checkout_rates": [20],
        "bare_rates": [20],
        "floor_rates": [20],
        "capacity_step_s": 1,
        "capacity_refine": 1,
        "logcost_rate": 20,
        "logcost_s": 1,
        "flame_s": 2,
        "noop_tasks": 200,
        "pipeline_orders": 60,
        "drain_timeout_s": 60,
    },
    "quick": {
        "system": {
            "rates": [100, 200, 300, 400, 500, 600],
            "step_s": 8,
            "refine": 1,
            "live_streams": 1000,
            "live_s": 10,
            "live_wait_s": 20,
            "burst_s": 10,
            "drain_limit_s": 10,
            "confirm_rate": 100,
            "confirm_s": 10,
            "seed_rate": 50,
            "seed_s": 10,
            "seed_factor": 1.0,
        },
        "users": [15, 50, 200],
        "phase_s": 12,  # with the ramps and drains, make bench stays under 5 min
        "ramp_s": 5,  # shoppers arrive over the ramp; measured after it (see report)
        "factor": 0.1,
        "think_s": 5.0,
        "poll_s": 1.0,  # the 202's Retry-After
        "follow": "stream",  # async shoppers watch the progress stream, as the shop page does
        # every checkout the sweep accepts is drained by the pipeline benchmark
        # afterwards (and audited), so the sweep starts where the answer is, in coarse
        # steps, then bisects (2 halvings: each capacity to within 75-100/s); the
        # checkout's steps reach 2,100/s since its writes are batched (1,000/s, the old
        # top, was passed: 2026-12-04-1240)
        "checkout_rates": [300, 600, 900, 1200, 1500, 1800, 2100],
        "bare_rates": [400, 800, 1200, 1600, 2000, 2400, 2800, 3200, 3600],
        "floor_rates": [400, 800, 1200, 1600, 2000, 2400, 2800, 3200],  # bench.bare's /bare/record
        "capacity_refine": 2,
        "logcost_rate": 150,  # four runs: INFO, WARNING, WARNING, INFO (bench.logcost)
        "logcost_s": 3,
        # 1.2 s steps and a 5 s flame window keep the backlog the sweep leaves (and
        # the zero-latency phase drains) near 2,000 checkouts: make bench < 5 min
        "capacity_step_s": 1.2,
        "flame_s": 5,
        "noop_tasks": 5000,
        "pipeline_orders": 600,
        "drain_timeout_s": 180,
    },
    "full": {
        "system": {
            "rates": [100, 200, 300, 400, 500, 600, 800],
            "step_s": 20,
            "refine": 2,
            "live_streams": 1000,
            "live_s": 20,
            "live_wait_s": 20,
            "burst_s": 10,
            "drain_limit_s": 10,
            "confirm_rate": 100,
            "confirm_s": 20,
            "seed_rate": 50,
            "seed_s": 20,
            "seed_factor": 1.0,
        },
        "users": [15, 50, 200, 500, 1000],
        "phase_s": 90,
        "ramp_s": 20,  # 1,000 shoppers arrive at 50/s
        "factor": 1.0,
        "think_s": 5.0,
        "poll_s": 1.0,  # the 202's Retry-After
        "follow": "stream",  # async shoppers watch the progress stream, as the shop page does
        # as in quick: every accepted checkout of the sweep is drained and audited
        "checkout_rates": [200, 400, 600, 800, 1000, 1200, 1400, 1600, 1800, 2000, 2200],
        "bare_rates": [400, 800, 1200, 1600, 2000, 2500, 3000, 3500, 4000],
        "floor_rates": [400, 800, 1200, 1600, 2000, 2400, 2800, 3200, 3600],
        "capacity_step_s": 3,
        "capacity_refine": 3,
        "logcost_rate": 150,
        "logcost_s": 5,
        "flame_s": 10,
        "noop_tasks": 20000,
        "pipeline_orders": 2000,
        "drain_timeout_s": 600,
    },
}
