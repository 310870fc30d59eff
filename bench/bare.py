"""The stack's ceilings, served like the product but doing nothing of the product's.

- ``app``: a bare Flask endpoint that does one Redis LPUSH and answers 202 (the
  "enqueue and answer" ceiling the checkout is compared with). Run it with the same
  gunicorn settings as the shop: ``gunicorn bench.bare:app -c gunicorn.conf.py``.
- ``huey``: a Huey instance with the shop's broker settings and one no-op task, for
  ``huey_consumer bench.bare.huey`` with the shop's consumer flags.

Benchmark-only code: it is not part of the product.
"""

from __future__ import annotations

import os
import uuid

from flask import Flask, jsonify
from huey import PriorityRedisExpireHuey

from orders.wiring import redis_pool

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
PREFIX = os.environ.get("QUEUE_PREFIX", "bench")

app = Flask(__name__)


@app.post("/bare/enqueue")
def enqueue():  # type: ignore[no-untyped-def]
    import redis

    client = redis.Redis(connection_pool=redis_pool(REDIS_URL))
    job_id = uuid.uuid4().hex
    client.lpush(f"{PREFIX}-bare", job_id)
    response = jsonify({"success": True, "data": {"jobId": job_id, "status": "queued"}})
    response.status_code = 202
    return response


@app.get("/bare/ready")
def ready():  # type: ignore[no-untyped-def]
    return jsonify({"ok": True})


huey = PriorityRedisExpireHuey(
    f"{PREFIX}-noop", connection_pool=redis_pool(REDIS_URL), results=False
)


@huey.task(name="noop")
def noop(counter_key: str) -> None:
    huey.storage.conn.incr(counter_key)
