"""Benchmark profiles: tiny (the e2e test), quick (`make bench`), full (`make bench-full`)."""

from __future__ import annotations

from typing import Any

PROFILES: dict[str, dict[str, Any]] = {
    "tiny": {  # the e2e test's: seconds, not minutes
        "users": [3],
        "phase_s": 3,
        "ramp_s": 1,
        "factor": 0.02,
        "think_s": 0.2,
        "poll_s": 0.1,
        "follow": "stream",
        "consumer_threads": 8,
        "consumer_db_pool": 1,
        "web_db_pool": "8+0",
        "pipeline_batch": 50,
        "checkout_rates": [20],
        "bare_rates": [20],
        "floor_rates": [20],
        "capacity_step_s": 1,
        "capacity_refine": 1,
        "micro_threads": 4,
        "flame_s": 2,
        "noop_tasks": 200,
        "pipeline_orders": 60,
        "drain_timeout_s": 60,
    },
    "quick": {
        "users": [15, 50, 200],
        "phase_s": 12,  # with the ramps and drains, make bench stays under 5 min
        "ramp_s": 5,  # shoppers arrive over the ramp; measured after it (see report)
        "factor": 0.1,
        "think_s": 5.0,
        "poll_s": 1.0,  # the 202's Retry-After
        "follow": "stream",  # async shoppers watch the progress stream, as the shop page does
        "consumer_threads": 64,
        "consumer_db_pool": 1,  # see bench.procs.consumer_env
        # kept + burst per gunicorn worker (bench.procs.server_env): 8 kept, none burst,
        # since a burst connection is closed when given back and the cliff reopened
        # ~100 per sweep (measured in A/B pairs: 4+4 held 525/s twice, 8+0 650 and 850/s)
        "web_db_pool": "8+0",
        "pipeline_batch": 50,  # PIPELINE_BATCH (orders.pipeline.runner)
        # every checkout the sweep accepts is drained by the pipeline benchmark
        # afterwards (and audited), so the sweep starts where the answer is, in coarse
        # steps, then bisects (2 halvings: each capacity to within 75-100/s); the
        # checkout's steps reach 2,100/s since its writes are batched (1,000/s, the old
        # top, was passed: 2026-12-04-1240)
        "checkout_rates": [300, 600, 900, 1200, 1500, 1800, 2100],
        "bare_rates": [400, 800, 1200, 1600, 2000, 2400, 2800, 3200, 3600],
        "floor_rates": [400, 800, 1200, 1600, 2000, 2400, 2800, 3200],  # bench.bare's /bare/record
        "capacity_refine": 2,
        # 1.2 s steps and a 5 s flame window keep the backlog the sweep leaves (and
        # the zero-latency phase drains) near 2,000 checkouts: make bench < 5 min
        "capacity_step_s": 1.2,
        "flame_s": 5,
        "micro_threads": 8,
        "noop_tasks": 5000,
        "pipeline_orders": 600,
        "drain_timeout_s": 180,
    },
    "full": {
        "users": [15, 50, 200, 500, 1000],
        "phase_s": 90,
        "ramp_s": 20,  # 1,000 shoppers arrive at 50/s
        "factor": 1.0,
        "think_s": 5.0,
        "poll_s": 1.0,  # the 202's Retry-After
        "follow": "stream",  # async shoppers watch the progress stream, as the shop page does
        "consumer_threads": 160,  # < the Redis pool (200) per consumer
        "consumer_db_pool": 1,  # see bench.procs.consumer_env
        # kept + burst per gunicorn worker (bench.procs.server_env): 8 kept, none burst,
        # since a burst connection is closed when given back and the cliff reopened
        # ~100 per sweep (measured in A/B pairs: 4+4 held 525/s twice, 8+0 650 and 850/s)
        "web_db_pool": "8+0",
        "pipeline_batch": 50,  # PIPELINE_BATCH (orders.pipeline.runner)
        # as in quick: every accepted checkout of the sweep is drained and audited
        "checkout_rates": [200, 400, 600, 800, 1000, 1200, 1400, 1600, 1800, 2000, 2200],
        "bare_rates": [400, 800, 1200, 1600, 2000, 2500, 3000, 3500, 4000],
        "floor_rates": [400, 800, 1200, 1600, 2000, 2400, 2800, 3200, 3600],
        "capacity_step_s": 3,
        "capacity_refine": 3,
        "flame_s": 10,
        "micro_threads": 8,
        "noop_tasks": 20000,
        "pipeline_orders": 2000,
        "drain_timeout_s": 600,
    },
}
