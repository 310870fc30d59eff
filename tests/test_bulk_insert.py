"""Many rows in one INSERT (orders.infra.bulk): the rows written are the rows given."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from orders.db import utcnow
from orders.infra.bulk import insert_rows
from orders.models import CheckoutStage, EventType, JobStatus
from orders.models.tables import EVENTS, JOBS
from orders.pipeline.jobs import job_row
from orders.pipeline.jobtypes import CREATE_ORDER, RESERVE_STOCK
from tests.factories import checkout_body, make_product


def _checkout_ids(client, session, count):
    make_product(session, sku="MUG", stock=100)
    session.commit()
    for _ in range(count):
        assert client.post("/api/checkout", json=checkout_body(("MUG", 1))).status_code == 202
    return list(session.scalars(text("SELECT id FROM checkouts ORDER BY id")))


def test_rows_of_every_kind_are_written_as_given_in_their_order(client, session, settings):
    checkouts = _checkout_ids(client, session, 3)
    before = session.scalar(text("SELECT COALESCE(MAX(id), 0) FROM checkout_events"))
    at = utcnow()
    events = [
        {
            "checkout_id": checkout_id,
            "type": EventType.PROGRESS,
            "stage": CheckoutStage.RESERVING_STOCK,
            "progress": n,
            "message": f"it's \"quoted\", {{braced}} and, comma'd {n}",
            "status_json": '{"status": "processing", "list": [1, "two"]}',
            "created_at": at,
        }
        for n, checkout_id in enumerate(checkouts)
    ]
    insert_rows(session, EVENTS, events)
    jobs = [job_row(settings, RESERVE_STOCK, checkout_id=c) for c in checkouts]  # links all None
    jobs[1] = job_row(settings, CREATE_ORDER, checkout_id=checkouts[1], payment_id=None)
    insert_rows(session, JOBS, jobs)
    insert_rows(session, JOBS, [])  # nothing to write: no statement
    session.commit()

    written = session.execute(
        select(EVENTS.c.checkout_id, EVENTS.c.type, EVENTS.c.stage, EVENTS.c.progress)
        .add_columns(EVENTS.c.message, EVENTS.c.status_json, EVENTS.c.created_at)
        .where(EVENTS.c.id > before)
        .order_by(EVENTS.c.id)  # ids in the order given
    ).all()
    assert [tuple(row) for row in written] == [tuple(event.values()) for event in events]
    rows = {
        row.id: row
        for row in session.execute(select(JOBS).where(JOBS.c.id.in_([j["id"] for j in jobs])))
    }
    for job in jobs:
        row = rows[job["id"]]
        assert (row.type, row.status, row.checkout_id, row.cart_id, row.email_id) == (
            job["type"],
            JobStatus.QUEUED,
            job["checkout_id"],
            None,
            None,
        )
        assert row.created_at == job["created_at"]


def test_rows_alike_in_every_column_are_each_written(client, session):
    checkouts = _checkout_ids(client, session, 1)
    row = {
        "checkout_id": checkouts[0],
        "type": EventType.INFO,
        "stage": CheckoutStage.QUEUED,
        "progress": 0,
        "message": "twice",
        "status_json": "{}",
        "created_at": utcnow(),
    }
    insert_rows(session, EVENTS, [row, dict(row), dict(row)])
    session.commit()
    query = select(EVENTS.c.id).where(EVENTS.c.message == "twice")
    assert len(session.scalars(query).all()) == 3


def test_one_row_is_written_too(client, session, settings):
    checkouts = _checkout_ids(client, session, 1)
    one = job_row(settings, RESERVE_STOCK, checkout_id=checkouts[0])
    insert_rows(session, JOBS, [one])
    session.commit()
    assert session.scalar(select(JOBS.c.checkout_id).where(JOBS.c.id == one["id"])) == checkouts[0]


def test_the_rows_added_come_back_and_a_default_left_out_is_refused(client, session, settings):
    checkouts = _checkout_ids(client, session, 3)
    jobs = [job_row(settings, RESERVE_STOCK, checkout_id=c) for c in checkouts]
    added = insert_rows(session, JOBS, jobs, (JOBS.c.checkout_id, JOBS.c.id))
    assert sorted(added) == sorted((job["checkout_id"], job["id"]) for job in jobs)
    assert insert_rows(session, JOBS, [job_row(settings, RESERVE_STOCK)]) == []  # none asked
    without = [{k: v for k, v in job_row(settings, RESERVE_STOCK).items() if k != "attempts"}]
    with pytest.raises(ValueError, match="rows for jobs must give attempts"):
        insert_rows(session, JOBS, without * 2)
    session.rollback()
