"""The bench's shop: ``tests.stack.Stack`` (the Procfile's own commands) on its own
PostgreSQL database and Redis key prefix, plus the bench-only processes, and CPU
accounting of process trees from /proc."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import redis
from sqlalchemy import text

from orders.db import utcnow
from tests.stack import WORKERS, Stack, free_port, proc_stat

TICKS = os.sysconf("SC_CLK_TCK")


def seed_env(factor: float) -> dict[str, str]:
    """The seed's latencies (ms) scaled by ``factor``."""
    return {
        "SIM_TIME_FACTOR": f"{factor:g}",
        "SIM_VALIDATE_LATENCY_MS": "500-1000",
        "SIM_GATEWAY_LATENCY_MS": "3000-5000",
        "SIM_ORDER_LATENCY_MS": "1000-2000",
        "SIM_INVENTORY_LATENCY_MS": "1000-2000",
        "SIM_EMAIL_LATENCY_MS": "1000-2000",
        "SIM_STEP_LATENCY_MS": "0",
    }


ZERO_LATENCY = {"SIM_GATEWAY_LATENCY_MS": "0", "SIM_STEP_LATENCY_MS": "0"}
SHIPPED_LATENCY: dict[str, str] = {}  # the Settings' defaults: gateway 300-800, steps 100-300
LATENCY_VARIABLES = ("SIM_TIME_FACTOR", *(f"SIM_{s}_LATENCY_MS" for s in (
    "VALIDATE", "GATEWAY", "ORDER", "INVENTORY", "EMAIL", "STEP")))  # fmt: skip
# the process environment a shell hands down; any shop setting found there is not
PASSED_THROUGH = ("PATH", "HOME", "LANG", "USER", "TMPDIR", "TZ")


def shipped_env(stack: Stack) -> dict[str, str]:
    """What the bench's shop runs with: the shipped defaults, plus where its database,
    Redis and files are (its own database and Redis key prefix, on loopback). Nothing
    tuned: the simulated latencies (:meth:`BenchStack.relaunch`) and the load are all
    the bench varies."""
    env = {k: v for k, v in os.environ.items() if k in PASSED_THROUGH or k.startswith("LC_")}
    return {
        **env,
        "PATH": stack.env["PATH"],
        "PYTHONPATH": stack.env["PYTHONPATH"],
        "DATA_DIR": stack.env["DATA_DIR"],
        "DATABASE_URL": stack.env["DATABASE_URL"],
        "REDIS_URL": stack.redis_url or "",
        "QUEUE_PREFIX": stack.prefix,
        "PORT": str(stack.port),
        "HOST": "127.0.0.1",
        # production, as shipped: it needs a secret and, for the simulated gateway the
        # bench measures against, the demo switch
        "SHOP_ENV": "production",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "SHOP_ALLOW_SIMULATED_GATEWAY": "1",
        # the seed's sync checkout, off in production, is the comparison the bench makes;
        # its progress streams are followed from one address (the per-client cap is for
        # shoppers, not for the load generator)
        "SYNC_CHECKOUT_ENABLED": "1",
        "SYNC_CHECKOUT_RATE_LIMIT": "off",
        "SSE_MAX_STREAMS_PER_CLIENT": "0",
    }


class BenchStack(Stack):
    """The Procfile's processes with the shipped settings, plus the bare LPUSH web app
    and the no-op Huey consumer (the stack's ceilings)."""

    def __init__(self, data_dir: Path, database_url: str, redis_url: str, **latency: str):
        super().__init__(data_dir, database_url, redis_url)
        self.shipped = shipped_env(self)
        self.env = {**self.shipped, **latency}
        self.bare_port = free_port()
        self.bare_url = f"http://127.0.0.1:{self.bare_port}"
        self.commands["bare"] = (
            f"env PORT={self.bare_port} gunicorn bench.bare:app -c gunicorn.conf.py"
        )

    @property
    def ledger(self) -> Path:
        """The simulated gateway's ledger (its default place, under DATA_DIR)."""
        return self.data_dir / "sim-gateway.db"

    def relaunch(self, latency: dict[str, str]) -> None:
        """Every shop process again, with these simulated latencies (the rest shipped)."""
        for name in ("web", *WORKERS):
            self.stop(name)
        self.env = {**self.shipped, **latency}
        since = utcnow()
        for name in (*WORKERS, "web"):  # consumers first: they know every task name
            self.start(name)
        self.wait_http(120)  # a shared machine can take its time to start gunicorn
        self.wait_consumers(since)

    def up(self, *names: str) -> BenchStack:
        self.release()
        since = utcnow()
        for name in names or (*WORKERS, "web"):
            self.start(name)
        self.wait_http(120)
        if not names:
            self.wait_consumers(since)
        return self

    def restart_workers(self, **env: str) -> None:
        self.env.update(env)
        for name in WORKERS:
            self.stop(name)
        since = utcnow()
        for name in WORKERS:
            self.start(name)
        self.wait_consumers(since)

    def wait_consumers(self, since: datetime, timeout: float = 120) -> None:
        """Until every consumer started after ``since`` has beaten once (its first
        heartbeat follows its imports and start-up): a consumer still starting takes a
        CPU second or so from the first seconds of the load that follows."""
        deadline = time.monotonic() + timeout
        started = "SELECT COUNT(DISTINCT queue) FROM worker_heartbeats WHERE started_at >= :since"
        while self.scalar(started, since=since) < len(WORKERS):
            if time.monotonic() > deadline:
                logs = "\n".join(self.log(name) for name in WORKERS)
                raise RuntimeError(f"the consumers did not start in {timeout:g} s:\n{logs}")
            time.sleep(0.2)

    def stop_workers(self) -> None:
        for name in WORKERS:
            self.stop(name)

    def start_noop(self) -> None:
        """``bench.bare.huey``'s no-op tasks on the consumers' own command, as the
        Procfile's payments line runs it (its jobs in flight, fetchers and nice)."""
        from orders.config import Settings
        from orders.worker import consumer_argv

        argv = consumer_argv("payments", Settings.from_env(self.env))
        argv[argv.index("tasks.payments_queue")] = "bench.bare.huey"
        nice = self.commands["payments"].split("python", 1)[0]  # "nice -n 10 "
        self.commands["noop"] = nice + " ".join(argv)
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
    fields = proc_stat(pid)
    if fields is None:
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
