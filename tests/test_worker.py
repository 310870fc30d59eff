"""The consumer command ``python -m orders.worker`` builds (orders/worker.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from orders.config import Settings
from orders.worker import consumer_argv

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = {"DATABASE_URL": "postgresql://db/shop", "REDIS_URL": "redis://r:6379/0"}


def test_on_postgres_and_redis_each_job_in_flight_is_a_greenlet(monkeypatch):
    monkeypatch.delenv("HUEY_QUIET", raising=False)
    argv = consumer_argv("payments", Settings.from_env(PRODUCTION))
    # gevent patches before huey loads: orders.consumer, not the plain huey_consumer;
    # 500 jobs in flight, fed by two fetchers
    assert argv[:4] == ["python", "-m", "orders.consumer", "tasks.payments_queue"]
    assert argv[argv.index("--in-flight") + 1] == "500"
    assert argv[argv.index("-k") + 1] == "greenlet" and argv[argv.index("-w") + 1] == "2"
    assert "-n" in argv and "-q" in argv  # periodic tasks elsewhere; huey's lines off
    assert argv[argv.index("-g") + 1] == "TERM" and "-d" not in argv  # Redis blocks, no polls
    scheduler = consumer_argv("scheduler", Settings.from_env(PRODUCTION))
    assert scheduler[scheduler.index("--in-flight") + 1] == "1" and "-n" not in scheduler
    monkeypatch.setenv("HUEY_QUIET", "0")
    assert "-q" not in consumer_argv("orders", Settings.from_env(PRODUCTION))


def test_on_sqlite_a_few_threads_poll_the_queue(tmp_path, monkeypatch):
    monkeypatch.delenv("HUEY_QUIET", raising=False)
    argv = consumer_argv("orders", Settings.from_env({"DATA_DIR": str(tmp_path)}))
    assert argv[:2] == ["huey_consumer", "tasks.orders_queue"]
    assert argv[argv.index("-k") + 1] == "thread" and argv[argv.index("-w") + 1] == "4"
    assert argv[argv.index("-d") + 1] == "0.05"


@pytest.mark.parametrize("module", ["socket", "threading", "time"])
def test_the_greenlet_consumer_patches_before_huey_loads(module):
    """``orders.consumer`` applies gevent's patching as its first act: by the time Huey
    (and through it tasks.py, psycopg, redis-py) is imported, the blocking calls
    yield to the other jobs. Checked in a fresh interpreter, as the consumer starts."""
    probe = (
        "import orders.consumer, gevent.monkey, huey.consumer as c, sys; "
        f"print(gevent.monkey.is_module_patched({module!r}), "
        "c.monkey.is_module_patched('socket'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["True", "True"]
