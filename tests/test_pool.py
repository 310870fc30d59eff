"""The consumers' pool under greenlets (orders/pool.py): started jobs first.

Run in a fresh interpreter patched by gevent, as the consumer is (orders.consumer)."""

from __future__ import annotations

import pytest

from tests.support import run_python

GATE = """
from gevent import monkey; monkey.patch_all()
import gevent
from orders.pool import PriorityGate

gate = PriorityGate(1)
order = []
def job(name, urgent):
    assert gate.acquire(urgent, timeout=5)
    order.append(name)
    gevent.sleep(0.01)
    gate.release()

assert gate.acquire(False, timeout=1)          # the one slot is taken
waiting = [gevent.spawn(job, f"new-{n}", False) for n in range(3)]
gevent.sleep(0)                                # three first checkouts in line
waiting.append(gevent.spawn(job, "started", True))
gevent.sleep(0)
assert not gate.acquire(False, timeout=0.05)   # full: a timed-out wait leaves the line
gate.release()
gevent.joinall(waiting)
print(" ".join(order), gate.free)
"""

POOL = """
from gevent import monkey; monkey.patch_all()
import sys, gevent
from sqlalchemy import create_engine, text
from orders.pool import StartedJobsFirstPool, job_started

engine = create_engine(
    sys.argv[1].replace("postgresql://", "postgresql+psycopg://", 1),
    poolclass=StartedJobsFirstPool, pool_size=1, max_overflow=0, pool_timeout=10,
)
order = []
def job(name, steps):
    job_started()
    for step in range(steps):
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_sleep(0.05)"))
        order.append(f"{name}.{step}")
        gevent.sleep(0)  # between its transactions, as a job waits on the gateway

jobs = [gevent.spawn(job, "a", 3)]
gevent.sleep(0.01)   # a has claimed; now ten more jobs arrive
jobs += [gevent.spawn(job, f"n{i}", 1) for i in range(10)]
gevent.joinall(jobs)
print(" ".join(order[:5]), engine.pool.checkedout())
"""


def test_a_waiter_marked_urgent_gets_the_next_free_slot_first() -> None:
    # the started job overtakes the three first checkouts; every slot comes back
    assert run_python(GATE) == "started new-0 new-1 new-2 1"


@pytest.mark.postgres
def test_a_started_job_finishes_before_new_ones_get_a_connection(postgres_database: str):
    """One connection, one job three transactions long, ten new jobs arriving after
    its first: each of its later transactions waits for one new job's at most (the one
    handed the connection while it was between transactions), not for all ten, as in
    a first-come pool, its lease running."""
    assert run_python(POOL, postgres_database) == "a.0 n0.0 a.1 n1.0 a.2 0"
