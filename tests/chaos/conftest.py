"""Chaos fixtures: a whole shop per test (real gunicorn + huey_consumer processes on
PostgreSQL + Redis, or SQLite), and a private Redis server a test may stop and restart.

The machine's shared Redis is never stopped: outage tests get their own
``redis-server`` on a free port, with persistence off (a restart starts it empty).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import redis

from tests.conftest import POSTGRES_URL
from tests.e2e.conftest import require_redis
from tests.stack import Stack, free_port, postgres_database

# Short leases and sweeps keep every chaos test bounded: a killed step is re-driven
# within about LEASE_SECONDS + SWEEP_INTERVAL_SECONDS.
CHAOS_ENV = {
    "LEASE_SECONDS": "6",  # gateway calls are cut at half the lease: 3 s
    "SWEEP_INTERVAL_SECONDS": "1",
    "REQUEUE_AFTER_SECONDS": "4",
    "RETRY_DELAY_SECONDS": "0.2",
    "HUEY_QUIET": "1",
    "GUNICORN_THREADS": "6",  # fewer PostgreSQL connections on a shared server
}


class PrivateRedis:
    """A ``redis-server`` of our own: ``stop()`` is an outage, ``start()`` an empty restart."""

    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.data_dir = data_dir
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is needed for the broker outage test"
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.data_dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


StackFactory = Callable[..., Stack]


@pytest.fixture
def make_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackFactory]:
    """``make_stack("postgres"|"sqlite", redis_url=None, **env)`` -> a stack, not yet up."""
    with ExitStack() as exits:

        def build(kind: str = "postgres", redis_url: str | None = None, **env: str) -> Stack:
            data_dir = tmp_path_factory.mktemp(f"chaos-{kind}")
            merged = {**CHAOS_ENV, **env}
            if kind == "sqlite":
                shop = Stack(data_dir, f"sqlite:///{data_dir}/shop.db", redis_url, **merged)
            else:
                assert POSTGRES_URL
                url = exits.enter_context(postgres_database(POSTGRES_URL))
                shop = Stack(data_dir, url, redis_url or require_redis(), **merged)
            exits.callback(shop.close)
            return shop

        yield build


@pytest.fixture
def http_gateway() -> Iterator[Callable[[Path, str], str]]:
    """``http_gateway(ledger, latency_ms)`` runs the simulated gateway server; returns its URL."""
    import sys

    import requests

    processes: list[subprocess.Popen[bytes]] = []

    def start(ledger: Path, latency_ms: str = "0") -> str:
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "orders.infra.sim_gateway_server", "--port", str(port),
             "--ledger", str(ledger), "--latency-ms", latency_ms],
            cwd=Path(__file__).resolve().parents[2],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        processes.append(process)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                requests.post(f"{url}/v1/none", timeout=1)
                return url
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    yield start
    for process in processes:
        process.kill()
        process.wait(10)
