"""Each step (orders.pipeline.steps) through the one runner, for one job and for many,
on SQLite and PostgreSQL: the same effects either way, and a re-run of a step whose
work is done writes nothing twice."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import event, func, insert, select, update

from orders.db import make_engine, make_session_factory
from orders.models import (
    Checkout,
    CheckoutEvent,
    CheckoutStage,
    Email,
    EmailStatus,
    HoldStatus,
    Job,
    JobStatus,
    Order,
    Payment,
    Product,
    StockHold,
)
from orders.models.tables import JOBS
from orders.pipeline.jobs import job_row
from orders.pipeline.jobtypes import JOB_TYPES
from orders.pipeline.runner import run
from tests.factories import checkout_body, make_product
from tests.support import Drain

STEPS = [
    "reserve-stock",
    "process-payment",
    "create-order",
    "update-inventory",
    "send-order-confirmation",
]


@pytest.fixture
def drain(settings, dispatched):
    # no payments rate limit, so every step of the table batches
    engine = make_engine(settings)
    yield Drain(replace(settings, payments_rate_limit=0), make_session_factory(engine), dispatched)
    engine.dispose()


class CountingGateway:
    def __init__(self, inner) -> None:
        self.inner, self.charges = inner, 0

    def charge(self, **kwargs):
        self.charges += 1
        return self.inner.charge(**kwargs)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def place(client, count: int) -> list[str]:
    ids = []
    for _ in range(count):
        response = client.post("/api/checkout", json=checkout_body(("TEE", 2)))
        assert response.status_code == 202, response.get_json()
        ids.append(response.get_json()["data"]["jobId"])
    return ids


def run_until(drain, job_type: str) -> list[str]:
    """Run every job alone until the waiting ones are of ``job_type``; their ids."""
    for _ in range(10):
        refs = drain.dispatched.take()
        if refs and {ref.type for ref in refs} == {job_type}:
            return [ref.id for ref in refs]
        for ref in refs:
            assert drain.run(ref.id) == "completed"
    raise AssertionError(f"no {job_type} job came")


def run_as_one_batch(drain, job_type: str, job_ids: list[str]) -> list[str]:
    """One message carrying every job id: one run of the step for all of them."""
    with drain.sessions() as session:
        return run(session, job_ids, drain.ctx, job_type=job_type)


def effects(session) -> dict[str, object]:
    """What the steps write, counted."""
    session.expire_all()

    def count(model, *where) -> int:
        return session.scalar(select(func.count()).select_from(model).where(*where))

    product = session.scalar(select(Product).where(Product.sku == "TEE"))
    return {
        "stock": product.stock,
        "sold": product.sold,
        "held": count(StockHold, StockHold.status == HoldStatus.HELD),
        "sold holds": count(StockHold, StockHold.status == HoldStatus.SOLD),
        "payments": count(Payment),
        "orders": count(Order),
        "emails": count(Email),
        "emails out": count(Email, Email.status != EmailStatus.PENDING),
        "completed": count(Checkout, Checkout.stage == CheckoutStage.COMPLETED),
        "events": count(CheckoutEvent),
        "jobs waiting": count(Job, Job.status.in_((JobStatus.QUEUED, JobStatus.SCHEDULED))),
    }


@pytest.mark.parametrize("job_type", STEPS)
@pytest.mark.parametrize("size", [1, 3])
def test_a_step_writes_for_many_jobs_what_it_writes_for_each(
    client, session, drain, job_type, size
):
    make_product(session, sku="TEE", stock=50)
    place(client, size)
    ids = run_until(drain, job_type)
    before = effects(session)
    assert run_as_one_batch(drain, job_type, ids[:1]) == ["completed"] * size  # takes all
    after = effects(session)
    expected = {
        "reserve-stock": {"stock": -2 * size, "held": size},
        "process-payment": {"payments": size},
        "create-order": {"orders": size},
        "update-inventory": {
            "sold": 2 * size,
            "held": -size,
            "sold holds": size,
            "emails": size,
            "completed": size,
        },
        "send-order-confirmation": {"emails out": size},
    }[job_type]
    changed = {k: after[k] - before[k] for k in after if after[k] != before[k]}  # type: ignore[operator]
    changed.pop("events", None)
    changed.pop("jobs waiting", None)
    assert changed == expected
    follow_up = JOB_TYPES[job_type].follow_up
    sent = drain.dispatched.take()
    assert [ref.type for ref in sent] == ([follow_up] * size if follow_up else [])
    drain.dispatched.refs.extend(sent)
    drain()  # the rest of the pipeline
    assert effects(session)["completed"] == size


@pytest.mark.parametrize("job_type", STEPS)
@pytest.mark.parametrize("size", [1, 3])
def test_a_step_run_again_after_its_work_is_done_writes_nothing_twice(
    client, session, drain, job_type, size
):
    make_product(session, sku="TEE", stock=50)
    place(client, size)
    ids = run_until(drain, job_type)
    assert run_as_one_batch(drain, job_type, ids[:1]) == ["completed"] * size
    follow_ups = drain.dispatched.take()
    once = effects(session)
    drain.ctx.gateway = counting = CountingGateway(drain.ctx.gateway)
    # the same step again for the same checkouts (a re-drive): new jobs, checkouts back
    stage = JOB_TYPES[job_type].stage
    jobs = session.scalars(select(Job).where(Job.id.in_(ids))).all()
    again = []
    for job in jobs:
        row = job_row(drain.ctx.settings, JOB_TYPES[job_type], checkout_id=job.checkout_id)
        row.update(email_id=job.email_id, attempts=1)  # its second attempt
        again.append(row)
        if stage is not None:
            session.execute(
                update(Checkout).where(Checkout.id == job.checkout_id).values(stage=stage)
            )
    session.execute(insert(JOBS), again)
    session.commit()
    outcomes = run_as_one_batch(drain, job_type, [again[0]["id"]])
    assert outcomes == ["completed"] * size
    twice = effects(session)
    for key in ("stock", "sold", "held", "sold holds", "payments", "orders", "emails out"):
        assert twice[key] == once[key], key
    assert counting.charges == 0  # a recorded payment is never charged again
    drain.dispatched.take()
    drain.dispatched.refs.extend(follow_ups)


def statements_of_one_batch(client, drain, job_type: str, size: int) -> list[str]:
    """The statements of one run of the step for ``size`` new checkouts' jobs."""
    place(client, size)
    ids = run_until(drain, job_type)
    sent: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:
        sent.append(statement)

    engine = drain.sessions.kw["bind"]
    event.listen(engine, "before_cursor_execute", record)
    try:
        assert run_as_one_batch(drain, job_type, ids[:1]) == ["completed"] * size
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return sent


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
@pytest.mark.parametrize("job_type", STEPS)
def test_a_step_sends_as_many_statements_for_many_jobs_as_for_one(client, session, drain, job_type):
    """A batch costs its step's statements once, whatever its size (on PostgreSQL,
    which the shop ships on: on SQLite SQLAlchemy inserts new ORM rows one by one, as
    the driver cannot return their keys in order)."""
    make_product(session, sku="TEE", stock=50)
    one = statements_of_one_batch(client, drain, job_type, 1)
    drain.dispatched.take()  # its follow-up stays waiting, of another type
    many = statements_of_one_batch(client, drain, job_type, 3)
    assert len(many) == len(one), "\n".join(many)
