"""A real shop in subprocesses: the Procfile's own commands, on a chosen backend.

``Stack`` runs the ``release`` line, then ``web`` (gunicorn) and one process per
queue (``python -m orders.worker ...`` which execs ``huey_consumer``), each with
its log in the stack's data directory. Tests talk HTTP to it, read its database,
kill and restart its processes.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

from orders.db import configure_sqlite
from orders.environ import database_url_for_sqlalchemy
from orders.infra.gateway import SimulatedGateway

ROOT = Path(__file__).resolve().parent.parent
WORKERS = ("orders", "payments", "notifications", "scheduler")
TERMINAL = ("completed", "failed")


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip() and not line.startswith("#"))


def proc_stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (the state first, then
    the parent's pid; utime and stime at 11 and 12), or None once the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Stack:
    def __init__(self, data_dir: Path, database_url: str, redis_url: str | None, **env: str):
        self.data_dir = data_dir
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.prefix = f"t{uuid.uuid4().hex[:10]}"
        self.redis_url = redis_url
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("TEST_", "PYTEST"))},
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            "PYTHONPATH": str(ROOT),
            "SHOP_ENV": "development",  # unset means production; tests of it pass SHOP_ENV
            "DATA_DIR": str(data_dir),
            "DATABASE_URL": database_url,
            "QUEUE_PREFIX": self.prefix,
            "PORT": str(self.port),
            "HOST": "127.0.0.1",
            "WEB_CONCURRENCY": "1",
            "SIM_GATEWAY_LATENCY_MS": "0",
            "SIM_STEP_LATENCY_MS": "0",
            "SIM_GATEWAY_LEDGER": str(data_dir / "gateway.db"),
            "RETRY_DELAY_SECONDS": "0.2",
            "SWEEP_INTERVAL_SECONDS": "1",
            "LEASE_SECONDS": "5",
            "REQUEUE_AFTER_SECONDS": "5",
            "CHECKOUT_RATE_LIMIT": "off",
            # the other per-client limits too (tests that check them turn them on)
            "SHOP_RATE_LIMIT": "off",
            "PAYMENT_RETRY_RATE_LIMIT": "off",
            "SYNC_CHECKOUT_RATE_LIMIT": "off",
            # the seed's 1000 charges/60 s is the gateway's contract, not under test here
            # (test_payments_rate_limit_e2e sets it); off, payments batch as in the bench
            "PAYMENTS_RATE_LIMIT": "0",
            "LOG_LEVEL": "INFO",
            **env,
        }
        if redis_url:
            self.env["REDIS_URL"] = redis_url
        self.commands = procfile()
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.engine: Engine = configure_sqlite(
            create_engine(database_url_for_sqlalchemy(database_url)), immediate=False
        )
        self.gateway = SimulatedGateway(data_dir / "gateway.db")
        self.http = requests.Session()

    # --- processes --------------------------------------------------------------------

    def release(self) -> None:
        result = subprocess.run(
            ["bash", "-c", self.commands["release"]],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr

    def start(self, name: str, instance: str | None = None) -> None:
        """Start the Procfile line ``name``; ``instance`` names a second copy (e.g. orders-2)."""
        key = instance or name
        log = open(self.data_dir / f"{key}.log", "ab")  # noqa: SIM115 (closed with the process)
        self.processes[key] = subprocess.Popen(
            ["bash", "-c", f"exec {self.commands[name]}"],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            process_group=0,  # signalled as a group; one session, as the Procfile runner
        )
        log.close()

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 40) -> None:
        process = self.processes.pop(name, None)
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)

    def kill(self, name: str) -> None:
        self.stop(name, signal.SIGKILL)

    def up(self, *names: str) -> Stack:
        self.release()
        for name in names or ("web", *WORKERS):
            self.start(name)
        self.wait_http()
        return self

    def wait_http(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.http.get(f"{self.base_url}/api/products", timeout=2).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise AssertionError(f"web did not come up; log:\n{self.log('web')}")

    def log(self, name: str) -> str:
        path = self.data_dir / f"{name}.log"
        return path.read_text(errors="replace")[-5000:] if path.exists() else ""

    def close(self) -> None:
        for name in list(self.processes):
            self.stop(name, signal.SIGINT, timeout=15)
        self.http.close()
        self.engine.dispose()
        if self.redis_url:
            import redis

            client = redis.Redis.from_url(self.redis_url)
            keys = list(client.scan_iter(f"*{self.prefix}*"))
            if keys:
                client.delete(*keys)
            client.close()

    # --- the shop -----------------------------------------------------------------------

    def add_product(self, sku: str, stock: int, price_cents: int = 1000) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO products (sku, name, description, price_cents, stock, sold, "
                    "created_at) VALUES (:sku, :name, '', :price, :stock, 0, CURRENT_TIMESTAMP)"
                ),
                {"sku": sku, "name": f"Test {sku}", "price": price_cents, "stock": stock},
            )

    def scalar(self, sql: str, **params: Any) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(text(sql), params).scalar()

    def checkout(self, sku: str, quantity: int = 1, token: str = "tok_visa", **headers: str) -> str:
        response = self.post_checkout(sku, quantity, token, **headers)
        assert response.status_code == 202, response.text
        return str(response.json()["data"]["jobId"])

    def post_checkout(
        self, sku: str, quantity: int = 1, token: str = "tok_visa", **headers: str
    ) -> requests.Response:
        """POST a checkout and return the raw response (202, or a 4xx problem)."""
        return self.http.post(
            f"{self.base_url}/api/checkout",
            json={
                "email": "e2e@example.com",
                "items": [{"sku": sku, "quantity": quantity}],
                "paymentToken": token,
            },
            headers=headers,
            timeout=10,
        )

    def status(self, job_id: str) -> dict[str, Any]:
        response = self.http.get(f"{self.base_url}/api/orders/status/{job_id}", timeout=10)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def wait_idle(self, timeout: float = 60) -> None:
        """Follow-ups (emails, refunds) finish too: no job is left waiting or running."""
        deadline = time.monotonic() + timeout
        live = "SELECT COUNT(*) FROM jobs WHERE status IN ('queued', 'scheduled', 'active')"
        while self.scalar(live):
            if time.monotonic() > deadline:
                raise AssertionError(f"jobs still live after {timeout} s")
            time.sleep(0.05)

    def wait_final(self, job_ids: list[str], timeout: float = 60) -> dict[str, dict[str, Any]]:
        """Poll until every checkout is completed or failed; fail with the logs if not."""
        deadline = time.monotonic() + timeout
        final: dict[str, dict[str, Any]] = {}
        while time.monotonic() < deadline:
            for job_id in job_ids:
                if job_id not in final:
                    body = self.status(job_id)
                    if body["status"] in TERMINAL:
                        final[job_id] = body
            if len(final) == len(job_ids):
                return final
            time.sleep(0.2)
        stuck = [j for j in job_ids if j not in final]
        logs = "\n".join(f"--- {n}\n{self.log(n)}" for n in ("web", *WORKERS))
        raise AssertionError(f"{len(stuck)} checkout(s) not final: {stuck[:5]}\n{logs}")


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A throwaway database on the PostgreSQL server."""
    admin = create_engine(database_url_for_sqlalchemy(admin_url), isolation_level="AUTOCOMMIT")
    name = f"shop_e2e_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
