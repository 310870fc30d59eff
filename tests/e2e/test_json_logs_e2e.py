"""LOG_FORMAT=json: every consumer line is JSON and a checkout's step lines carry its id."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import text

from tests.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("deploy")]


@pytest.fixture
def json_stack(tmp_path):
    stack = Stack(tmp_path, f"sqlite:///{tmp_path}/shop.db", None, LOG_FORMAT="json")
    try:
        yield stack.up()
    finally:
        stack.close()


def test_consumer_logs_are_json_with_the_checkout_id(json_stack):
    stack = json_stack
    item = f"LOG-{uuid.uuid4().hex[:8]}"
    stack.add_product(item, stock=3)
    job_id = stack.checkout(item, 1, token="tok_flaky")  # a retry adds lines
    assert stack.wait_final([job_id])[job_id]["status"] == "completed"
    stack.wait_final([job_id])
    stack.close()  # flush: the consumers stop gracefully

    with stack.engine.connect() as conn:
        job_ids = set(
            conn.execute(
                text(
                    "SELECT j.id FROM jobs j JOIN checkouts c ON c.id = j.checkout_id "
                    "WHERE c.public_id = :p"
                ),
                {"p": job_id},
            ).scalars()
        )
    assert len(job_ids) >= 5  # four steps and the confirmation email

    ours = []
    for name in ("web", "orders", "payments", "notifications", "scheduler"):
        for line in (stack.data_dir / f"{name}.log").read_text().splitlines():
            entry = json.loads(line)  # every line, including huey's own, is JSON
            if entry.get("logger", "").startswith(("orders", "tasks")) and any(
                j in entry["message"] for j in job_ids
            ):
                ours.append(entry)
    assert {e.get("job_id") for e in ours} >= job_ids  # every job logged its outcome
    assert all(e.get("checkout_id") == job_id for e in ours), ours
    assert any("attempt 1" in e["message"] and "retrying" in e["message"] for e in ours)
