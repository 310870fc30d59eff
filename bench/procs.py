"""The bench's shop: ``tests.stack.Stack`` (the Procfile's own commands) on its own
PostgreSQL database and Redis key prefix, plus the bench-only processes, and CPU
accounting of process trees from /proc."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import redis
from sqlalchemy import text

from tests.stack import WORKERS, Stack, free_port

TICKS = os.sysconf("SC_CLK_TCK")


def seed_env(factor: float) -> dict[str, str]:
    """The seed's latencies (ms) scaled by ``factor``, and the bench's server settings."""
    return {
        "SIM_TIME_FACTOR": f"{factor:g}",
        "SIM_VALIDATE_LATENCY_MS": "500-1000",
        "SIM_GATEWAY_LATENCY_MS": "3000-5000",
        "SIM_ORDER_LATENCY_MS": "1000-2000",
        "SIM_INVENTORY_LATENCY_MS": "1000-2000",
        "SIM_EMAIL_LATENCY_MS": "1000-2000",
        "SIM_STEP_LATENCY_MS": "0",
    }


def consumer_env(db_pool: int) -> dict[str, str]:
    """The consumers' database pool. On one box the pipeline's transactions share the
    CPU (and PostgreSQL) with the shoppers' requests: a small pool per consumer bounds
    how many of them run at once, so a backlog waits in the queue, not in front of the
    web's queries. Jobs release their connection while they wait on the gateway or the
    simulated work, so this caps transactions, not jobs in flight."""
    return {"DB_POOL_SIZE": str(db_pool), "DB_MAX_OVERFLOW": "0"}


def server_env(threads: int, web_pool: str = "8+0", batch: int = 50) -> dict[str, str]:
    kept, burst = web_pool.split("+")
    return {
        "PIPELINE_BATCH": str(batch),
        "WEB_CONCURRENCY": "2",
        "GUNICORN_THREADS": "16",
        "ORDERS_CONCURRENCY": str(threads),
        "PAYMENTS_CONCURRENCY": str(threads),
        "NOTIFICATIONS_CONCURRENCY": str(threads),
        "DB_POOL_SIZE": kept,  # six processes x 8 stay well under max_connections = 100
        "DB_MAX_OVERFLOW": burst,
        "HUEY_QUIET": "1",
        "LOG_LEVEL": "WARNING",
        "LEASE_SECONDS": "30",
        "SWEEP_INTERVAL_SECONDS": "5",
        "REQUEUE_AFTER_SECONDS": "60",
        "RETRY_DELAY_SECONDS": "0.5",
        "CHECKOUT_RATE_LIMIT": "off",
        # the benchmark is one client (127.0.0.1) posting the seed's sync checkout and
        # following up to 1,000 streams: the per-client limits would measure themselves
        "SYNC_CHECKOUT_ENABLED": "1",
        "SYNC_CHECKOUT_RATE_LIMIT": "off",
        "SSE_MAX_STREAMS_PER_CLIENT": "0",
        # The seed's payments limit (1000 charges / 60 s) is the gateway contract's cap,
        # not our capacity: with it on, a fast run parks charges until the next window.
        "PAYMENTS_RATE_LIMIT": "0",
    }


class BenchStack(Stack):
    """A Stack plus the bare LPUSH web app and the no-op Huey consumer."""

    def __init__(
        self,
        data_dir: Path,
        database_url: str,
        redis_url: str,
        nice: int = 0,
        consumer_env: dict[str, str] | None = None,
        **env: str,
    ):
        super().__init__(data_dir, database_url, redis_url, **env)
        self.consumer_env = dict(consumer_env or {})  # the consumers' own settings
        self.nice = nice
        if nice:  # the web keeps its CPU; the pipeline absorbs the wait
            for name in WORKERS:
                self.commands[name] = f"nice -n {nice} {self.commands[name]}"
        self.bare_port = free_port()
        self.bare_url = f"http://127.0.0.1:{self.bare_port}"
        self.commands["bare"] = (
            f"env PORT={self.bare_port} gunicorn bench.bare:app -c gunicorn.conf.py"
        )

    def start(self, name: str, instance: str | None = None) -> None:
        if name not in WORKERS or not self.consumer_env:
            super().start(name, instance)
            return
        shared = self.env
        self.env = {**shared, **self.consumer_env}
        try:
            super().start(name, instance)
        finally:
            self.env = shared

    def restart_workers(self, **env: str) -> None:
        self.env.update(env)
        self.consumer_env.update(env)
        for name in WORKERS:
            self.stop(name)
        for name in WORKERS:
            self.start(name)

    def stop_workers(self) -> None:
        for name in WORKERS:
            self.stop(name)

    def start_noop(self, threads: int) -> None:
        command = f"huey_consumer bench.bare.huey -k thread -w {threads} -n -q"
        self.commands["noop"] = f"nice -n {self.nice} {command}" if self.nice else command
        self.start("noop")

    def wait_bare(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.http.get(f"{self.bare_url}/bare/ready", timeout=2).ok:
                    return
            except Exception:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"bare endpoint did not come up:\n{self.log('bare')}")

    def redis(self) -> redis.Redis:
        assert self.redis_url
        return redis.Redis.from_url(self.redis_url)

    def pid(self, name: str) -> int:
        return self.processes[name].pid

    def cpu_seconds(self, name: str) -> float:
        return tree_cpu_seconds(self.pid(name)) if name in self.processes else 0.0

    def close(self) -> None:
        super().close()
        client = self.redis()
        keys = list(client.scan_iter(f"{self.prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()


def _stat(pid: int) -> tuple[int, float] | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICKS  # ppid, utime+stime


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds used so far by ``root`` and its live descendants."""
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat is not None:
                stats[int(entry)] = stat
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            total += stats[pid][1]
            todo += [child for child, (ppid, _) in stats.items() if ppid == pid]
    return total


class PostgresCpu:
    """CPU used by the PostgreSQL backends serving *our* database (the server is shared):
    each backend counts from when it was first seen (from 0 if it started later)."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.base: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.first_round = True

    def seconds(self) -> float:
        with self.stack.engine.connect() as conn:
            pids = conn.execute(
                text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
            ).all()
        for (pid,) in pids:
            stat = _stat(int(pid))  # the server runs on this machine
            if stat is None:
                continue
            self.base.setdefault(pid, stat[1] if self.first_round else 0.0)
            self.last[pid] = stat[1]
        self.first_round = False
        return sum(self.last[pid] - self.base[pid] for pid in self.last)


def cpu_by_process(
    stack: BenchStack, postgres: PostgresCpu, names: tuple[str, ...]
) -> dict[str, float]:
    """CPU seconds so far of each named process tree, and of our database's backends."""
    cpu = {name: stack.cpu_seconds(name) for name in names}
    cpu["postgres"] = postgres.seconds()
    return cpu


def flame(pid: int, seconds: float, path: Path) -> subprocess.Popen[bytes] | None:
    """Start py-spy on a process tree for ``seconds``, writing an SVG flame graph."""
    exe = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if exe is None:
        return None
    return subprocess.Popen(
        [
            exe,
            "record",
            "--pid",
            str(pid),
            "--subprocesses",
            "--duration",
            str(int(seconds)),
            "--rate",
            "50",
            "--nonblocking",
            "--format",
            "flamegraph",
            "-o",
            str(path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def finish(spy: subprocess.Popen[bytes] | None) -> None:
    if spy is not None:
        try:
            spy.wait(60)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait(5)
