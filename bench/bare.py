"""The stack's ceilings, served like the product but doing nothing of the product's.

- ``app``: a bare Flask endpoint that does one Redis LPUSH and answers 202 (the
  "enqueue and answer" ceiling the checkout is compared with). Run it with the same
  gunicorn settings as the shop: ``gunicorn bench.bare:app -c gunicorn.conf.py``.
  Its ``/bare/record`` commits one INSERT on PostgreSQL first (rows written together
  under load, as the shop's checkouts are), then does the LPUSH: the floor of any
  checkout that records durably before it answers (DESIGN.md's rule), so the report
  can say how much of the gap to the ceiling is that rule's.
- ``huey``: a Huey instance of the consumers' class and broker settings, one no-op task, for
  ``huey_consumer bench.bare.huey`` with the shop's consumer flags.

Benchmark-only code: it is not part of the product.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence

from flask import Flask, Response, jsonify
from sqlalchemy import Engine, create_engine

from orders.infra.combiner import Combiner
from orders.infra.hueys import RedisHuey
from orders.infra.redis_pool import redis_pool

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
PREFIX = os.environ.get("QUEUE_PREFIX", "bench")

FLOOR_TABLE = "bench_floor"  # created by the bench (bench.capacity) before the sweeps

app = Flask(__name__)
_engine: Engine | None = None
_writer: Combiner[str, None] | None = None


@app.post("/bare/enqueue")
def enqueue() -> Response:
    return _enqueued(uuid.uuid4().hex)


@app.post("/bare/record")
def record() -> Response:
    """One row committed, then the LPUSH. Rows are written as the shop writes its
    checkouts (orders.checkout.group): those that arrive while a write is in
    flight share the next one, one statement and one commit (autocommit, on the
    driver's cursor, from a pool sized as the shop's web pool)."""
    job_id = uuid.uuid4().hex
    _floor_writer().submit(job_id)
    return _enqueued(job_id)


def _write_rows(job_ids: Sequence[str]) -> list[None]:
    raw = _database().raw_connection()
    try:
        driver = raw.driver_connection
        assert driver is not None  # a live pooled connection has one
        driver.autocommit = True
        with driver.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {FLOOR_TABLE} (job_id) SELECT unnest(CAST(%s AS VARCHAR[]))",
                (list(job_ids),),
            )
        driver.autocommit = False
    finally:
        raw.close()
    return [None] * len(job_ids)


def _floor_writer() -> Combiner[str, None]:
    global _writer
    if _writer is None:
        _writer = Combiner(_write_rows, int(os.environ.get("CHECKOUT_WRITE_BATCH", "50")))
    return _writer


def _enqueued(job_id: str) -> Response:
    import redis

    client = redis.Redis(connection_pool=redis_pool(REDIS_URL))
    client.lpush(f"{PREFIX}-bare", job_id)
    response = jsonify({"success": True, "data": {"jobId": job_id, "status": "queued"}})
    response.status_code = 202
    return response


def _database() -> Engine:
    """The bench database, pooled like the shop's web (DB_POOL_SIZE + DB_MAX_OVERFLOW)."""
    global _engine
    if _engine is None:
        from orders.db import warm_pool
        from orders.environ import database_url_for_sqlalchemy

        _engine = create_engine(
            database_url_for_sqlalchemy(os.environ["DATABASE_URL"]),
            pool_size=int(os.environ.get("DB_POOL_SIZE", "5")),
            max_overflow=int(os.environ.get("DB_MAX_OVERFLOW", "0")),
        )
        warm_pool(_engine)  # as the shop's web does at start (gunicorn.conf.py)
    return _engine


@app.get("/bare/ready")
def ready() -> Response:
    return jsonify({"ok": True})


huey = RedisHuey(  # the consumers' class
    f"{PREFIX}-noop", connection_pool=redis_pool(REDIS_URL), results=False
)


@huey.task(name="noop")
def noop(counter_key: str) -> None:
    huey.storage.conn.incr(counter_key)
