"""Where a closed-model run's time went (read here; rendered by ``bench.report``).

A submit→final time far above the simulated work is queueing. Two readings say where:
- per job type, how long its jobs waited between being written (committed, then sent
  to their queue) and being claimed, and how long they then ran (the simulated work,
  plus waiting for a database connection);
- per process, how many cores it used while the shoppers ran: a queue whose jobs wait
  while its consumer is busy and the box has cores to spare is short of consumer
  capacity (threads, connections); a box at 2.0 cores is short of CPU.
"""

from __future__ import annotations

import time

from sqlalchemy import bindparam, text

from bench.procs import BenchStack, PostgresCpu, cpu_by_process
from bench.report import percentile

PROCESSES = ("web", "orders", "payments", "notifications")

# first attempts only: a retried job's wait includes its backoff
_JOBS = text(
    "SELECT j.type, j.created_at, j.started_at, j.finished_at FROM jobs j "
    "JOIN checkouts c ON c.id = j.checkout_id "
    "WHERE c.public_id IN :ids AND j.status = 'completed' AND j.attempts = 1"
).bindparams(bindparam("ids", expanding=True))


class CpuMeter:
    """Cores used by the shop's processes (and our database's backends) since start."""

    def __init__(self, stack: BenchStack) -> None:
        self.stack = stack
        self.postgres = PostgresCpu(stack)
        self.started = time.monotonic()
        self.base = cpu_by_process(stack, self.postgres, PROCESSES)

    def cores(self) -> dict[str, float]:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        now = cpu_by_process(self.stack, self.postgres, PROCESSES)
        return {name: (now[name] - self.base[name]) / elapsed for name in now}


def job_times(stack: BenchStack, public_ids: list[str]) -> dict[str, dict[str, float]]:
    """Per job type of these checkouts: jobs counted, queue wait and run p50/p95 (ms)."""
    if not public_ids:
        return {}
    waits: dict[str, list[float]] = {}
    runs: dict[str, list[float]] = {}
    with stack.engine.connect() as conn:
        for kind, created, started, finished in conn.execute(_JOBS, {"ids": public_ids}):
            waits.setdefault(kind, []).append(1000 * (started - created).total_seconds())
            runs.setdefault(kind, []).append(1000 * (finished - started).total_seconds())
    return {
        kind: {
            "jobs": len(waits[kind]),
            "wait_p50_ms": percentile(waits[kind], 50),
            "wait_p95_ms": percentile(waits[kind], 95),
            "run_p50_ms": percentile(runs[kind], 50),
            "run_p95_ms": percentile(runs[kind], 95),
        }
        for kind in sorted(waits)
    }
