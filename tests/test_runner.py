"""The runner (orders.pipeline.runner) against a real database: claims, batches, and
what a batch writes is what the jobs would have written one by one; a set-wise write
that fails is written again job by job through the same step."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import event, func, select, text, update
from sqlalchemy.orm import Session

from orders.config import Settings
from orders.db import make_engine, make_session_factory, utcnow
from orders.environ import ConfigError
from orders.errors import GatewayCircuitOpen, GatewayError, MailError
from orders.models import (
    Checkout,
    CheckoutEvent,
    CheckoutStage,
    CheckoutStatus,
    Email,
    EmailStatus,
    HoldStatus,
    Job,
    JobStatus,
    Order,
    OrderLine,
    Payment,
    Product,
    QueuePause,
    StockHold,
)
from orders.models.tables import JOBS
from orders.pipeline.jobs import job_row
from orders.pipeline.jobtypes import (
    CREATE_ORDER,
    JOB_TYPES,
    ORDERS,
    RESERVE_STOCK,
    UPDATE_INVENTORY,
)
from orders.pipeline.leases import claim, close_all, postpone, reschedule
from orders.pipeline.messages import message_groups
from orders.pipeline.step import Step
from orders.pipeline.steps import create_order
from tests.factories import checkout_body, make_product
from tests.support import Drain


@pytest.fixture
def batched(settings, dispatched):
    engine = make_engine(settings)
    yield Drain(settings, make_session_factory(engine), dispatched, batched=True)
    engine.dispose()


def place(client, *items, **extra):
    response = client.post("/api/checkout", json=checkout_body(*items, **extra))
    assert response.status_code == 202, response.get_json()
    return response.get_json()["data"]["jobId"]


def timeline(session, public_id):
    """(type, message) of each event, the order number masked."""
    checkout = session.scalar(select(Checkout).where(Checkout.public_id == public_id))
    events = session.scalars(
        select(CheckoutEvent)
        .where(CheckoutEvent.checkout_id == checkout.id)
        .order_by(CheckoutEvent.id)
    )
    return [(e.type.value, re.sub(r"ORD-\w+", "ORD", e.message)) for e in events]


def batchable(settings, job_type):
    return JOB_TYPES[job_type].batch_size(settings) > 1


def claim_batch(session, job_type, own, worker, lease_seconds, limit, **kw):
    return claim(session, own, worker, lease_seconds, job_type=job_type, extra=limit, **kw)


def outcomes(ran, job_type):
    return [outcome for kind, outcome in ran if kind == job_type]


def test_one_message_runs_every_waiting_job_of_its_type_as_the_single_path_would(
    client, session, drain, batched
):
    product = make_product(session, sku="MUG", stock=50)
    other = make_product(session, sku="CAP", stock=50)
    alone = place(client, ("MUG", 2), ("CAP", 1))
    drain()  # the single path, for comparison
    ids = [place(client, ("MUG", 2), ("CAP", 1)) for _ in range(6)]
    ran = batched()
    # the first message of each orders step took all six; the other five found none
    batched_types = (
        "reserve-stock",
        "process-payment",
        "create-order",
        "update-inventory",
        "send-order-confirmation",
    )
    for job_type in batched_types:
        assert outcomes(ran, job_type) == [",".join(["completed"] * 6)] + [""] * 5
    session.expire_all()
    expected = timeline(session, alone)
    for public_id in ids:
        assert client.get(f"/api/orders/status/{public_id}").get_json()["status"] == "completed"
        assert timeline(session, public_id) == expected
    assert (session.get(Product, product.id).stock, session.get(Product, product.id).sold) == (
        36,
        14,
    )
    assert (session.get(Product, other.id).stock, session.get(Product, other.id).sold) == (43, 7)
    holds = session.scalars(select(StockHold)).all()
    assert len(holds) == 14 and {h.status for h in holds} == {HoldStatus.SOLD}
    assert session.scalar(select(func.count()).select_from(Order)) == 7
    assert session.scalar(select(func.count()).select_from(OrderLine)) == 14
    assert set(session.scalars(select(Email.status))) == {EmailStatus.STORED}
    assert session.scalar(select(func.count()).select_from(Email)) == 7
    jobs = session.scalars(select(Job)).all()
    assert len(jobs) == 35 and {(j.status, j.attempts) for j in jobs} == {(JobStatus.COMPLETED, 1)}


def test_a_batch_that_runs_out_of_stock_runs_job_by_job(client, session, batched):
    plenty = make_product(session, sku="PLENTY", stock=10)
    product = make_product(session, sku="LAST", stock=2)
    ids = [place(client, ("PLENTY", 1), ("LAST", 1)) for _ in range(3)]  # each saw 2 in stock
    batched()
    states = [client.get(f"/api/orders/status/{i}").get_json() for i in ids]
    assert [s["status"] for s in states] == ["completed", "completed", "failed"]
    assert states[2]["code"] == "out_of_stock"
    assert states[2]["error"] == f"{product.name} (LAST) is out of stock"  # the one short
    session.expire_all()
    # the set's statements went together, PLENTY's taken before LAST's fell short: all
    # rolled back, then written checkout by checkout
    assert (session.get(Product, product.id).stock, session.get(Product, product.id).sold) == (0, 2)
    assert (session.get(Product, plenty.id).stock, session.get(Product, plenty.id).sold) == (8, 2)
    assert batched.gateway.ledger()["captures"] == 2


class FlakyMailer:
    """Fails the first send to ``bad``; remembers every message that went out."""

    def __init__(self, bad: str) -> None:
        self.bad, self.sent, self.failed = bad, [], 0

    def send(self, email) -> None:
        if email.to_addr == self.bad and not self.failed:
            self.failed += 1
            raise MailError(f"SMTP send to {email.to_addr} failed: 451 try later")
        self.sent.append(email.to_addr)


def test_an_email_that_fails_in_a_batch_is_retried_and_none_goes_twice(
    client, session, settings, dispatched
):
    make_product(session, sku="TEE", stock=10)
    for to in ("a@example.com", "bad@example.com", "c@example.com"):
        response = client.post("/api/checkout", json=checkout_body(("TEE", 1), email=to))
        assert response.status_code == 202
    mailer = FlakyMailer("bad@example.com")
    engine = make_engine(settings)
    try:
        ran = Drain(settings, make_session_factory(engine), dispatched, mailer, batched=True)()
    finally:
        engine.dispose()
    # the failed send is that job's outcome (a retry, as alone); the others are recorded
    sent = [outcome for outcome in outcomes(ran, "send-order-confirmation") if outcome]
    assert sent == ["completed,retrying,completed", "completed"]
    assert mailer.failed == 1
    assert sorted(mailer.sent) == ["a@example.com", "bad@example.com", "c@example.com"]
    assert set(session.scalars(select(Email.status))) == {EmailStatus.SENT}
    jobs = session.scalars(select(Job).where(Job.type == "send-order-confirmation")).all()
    assert sorted((job.status.value, job.attempts) for job in jobs) == [
        ("completed", 1),
        ("completed", 1),
        ("completed", 2),  # the failed send's retry
    ]


def test_a_retried_job_runs_alone_beside_the_batch(client, session, batched, dispatched):
    make_product(session, sku="TEE", stock=10)
    ids = [place(client, ("TEE", 1)) for _ in range(3)]
    retried = dispatched.refs[1].id
    # its first attempt entered the step, then its worker died
    session.execute(update(Job).where(Job.id == retried).values(attempts=1))
    session.execute(
        update(Checkout)
        .where(Checkout.public_id == ids[1])
        .values(stage=CheckoutStage.RESERVING_STOCK, status=CheckoutStatus.PROCESSING)
    )
    session.commit()
    ran = batched()
    assert outcomes(ran, "reserve-stock")[0] == "completed,completed,completed"
    for public_id in ids:
        assert client.get(f"/api/orders/status/{public_id}").get_json()["status"] == "completed"
    session.expire_all()
    messages = [m for _, m in timeline(session, ids[1])]
    assert "Retrying reserving stock, attempt 2/5" in messages
    assert not any("Retrying" in m for _, m in timeline(session, ids[0]))


def test_a_set_wise_write_that_raises_keeps_nothing_and_each_job_is_written_alone(
    client, session, batched, monkeypatch
):
    make_product(session, sku="TEE", stock=10)
    ids = [place(client, ("TEE", 1)) for _ in range(4)]
    real = create_order.STEP
    calls = []

    def broken(session, items, ctx):
        calls.append(len(items))
        jobs = real.write(session, items, ctx)  # writes the orders, then fails if many
        if len(items) > 1:
            raise RuntimeError("boom")
        return jobs

    monkeypatch.setattr(create_order, "STEP", Step(broken, real.load, real.call))
    ran = batched()
    assert calls == [4, 1, 1, 1, 1]  # the set, then each job through the same write
    assert outcomes(ran, "create-order")[0] == "completed,completed,completed,completed"
    for public_id in ids:
        assert client.get(f"/api/orders/status/{public_id}").get_json()["status"] == "completed"
    assert session.scalar(select(func.count()).select_from(Order)) == 4  # one each
    attempts = session.scalars(select(Job.attempts).where(Job.type == CREATE_ORDER.name)).all()
    assert attempts == [1, 1, 1, 1]  # the fallback used no attempt


def test_a_declined_card_in_a_batch_fails_its_checkout_as_the_single_step_does(
    client, session, drain, batched
):
    product = make_product(session, sku="TEE", stock=10)
    alone = place(client, ("TEE", 1), paymentToken="tok_declined")
    drain()  # the single path, for comparison
    ids = [
        place(client, ("TEE", 1), paymentToken=token)
        for token in ("tok_visa", "tok_declined", "tok_visa")
    ]
    ran = batched()
    assert outcomes(ran, "process-payment")[0] == "completed,completed,completed"
    states = [client.get(f"/api/orders/status/{i}").get_json() for i in ids]
    assert [s["status"] for s in states] == ["completed", "failed", "completed"]
    assert states[1]["code"] == "payment_declined"
    session.expire_all()
    assert timeline(session, ids[1]) == timeline(session, alone)
    assert (session.get(Product, product.id).stock, session.get(Product, product.id).sold) == (8, 2)
    ledger = batched.gateway.ledger()
    assert (ledger["captures"], ledger["declines"]) == (2, 2)
    payments = session.scalars(select(Payment.status)).all()
    assert sorted(p.value for p in payments) == ["captured", "captured", "declined", "declined"]


class OnceFailingGateway:
    """Raises ``error`` on the first charge for ``token``, then charges as ``inner``;
    counts every call by idempotency key."""

    def __init__(self, inner, token, error) -> None:
        self.inner, self.token, self.error = inner, token, error
        self.calls: dict[str, int] = {}

    def charge(self, *, amount_cents, token, idempotency_key):
        self.calls[idempotency_key] = self.calls.get(idempotency_key, 0) + 1
        if token == self.token and self.calls[idempotency_key] == 1:
            raise self.error
        return self.inner.charge(
            amount_cents=amount_cents, token=token, idempotency_key=idempotency_key
        )


@pytest.mark.parametrize(
    "error, outcome, event",
    [
        (GatewayError("gateway error: upstream timeout"), "retrying", "retrying in"),
        (GatewayCircuitOpen("circuit open"), "waiting", "circuit open"),
    ],
)
def test_a_charge_that_raised_in_a_batch_runs_alone_with_that_outcome_and_no_second_call(
    client, session, batched, error, outcome, event
):
    make_product(session, sku="TEE", stock=10)
    tokens = ("tok_visa", "tok_other", "tok_visa")
    ids = [place(client, ("TEE", 1), paymentToken=token) for token in tokens]
    gateway = OnceFailingGateway(batched.gateway, "tok_other", error)
    batched.ctx.gateway = gateway
    ran = batched()
    # the batch recorded two charges; the other job got the single step's outcome
    assert outcomes(ran, "process-payment")[0] == f"completed,{outcome},completed"
    for public_id in ids:
        assert client.get(f"/api/orders/status/{public_id}").get_json()["status"] == "completed"
    assert sorted(gateway.calls.values()) == [1, 1, 2]  # the failed call once, then its retry
    session.expire_all()
    messages = [m for _, m in timeline(session, ids[1])]
    assert any(event in m for m in messages), messages
    assert batched.gateway.ledger()["captures"] == 3


def _waiting(session, settings, job_type=RESERVE_STOCK, age=0.0, **values):
    row = job_row(settings, job_type)
    row["created_at"] = utcnow() - timedelta(seconds=age)
    row.update(values)
    session.execute(JOBS.insert(), row)
    return row["id"]


def test_a_retry_spends_its_attempt_and_a_wait_for_the_breaker_gives_it_back(session, settings):
    retried, waited = _waiting(session, settings), _waiting(session, settings)
    session.commit()
    taken = {c.job_id: c for c in claim_batch(session, RESERVE_STOCK.name, [], "w", 30, 2)}
    session.commit()
    reschedule(session, taken[retried], 5.0, "gateway error: " + "x" * 600, "Traceback")
    postpone(session, taken[waited], 7.0, "circuit open")
    session.commit()
    rows = {row.id: row for row in session.execute(select(JOBS)).all()}
    for job_id, attempts, delay in ((retried, 1, 5.0), (waited, 0, 7.0)):
        row = rows[job_id]
        assert (row.status, row.attempts, row.lease_until) == (JobStatus.SCHEDULED, attempts, None)
        wait = (row.run_at - row.enqueued_at).total_seconds()
        assert wait == pytest.approx(delay, abs=0.01)
    assert len(rows[retried].last_error) == 500 and rows[retried].traceback == "Traceback"
    assert (rows[waited].last_error, rows[waited].traceback) == ("circuit open", None)


def test_a_claim_takes_the_oldest_due_jobs_of_its_type(session, settings):
    oldest = _waiting(session, settings, age=30)
    older = _waiting(session, settings, age=20)
    new = _waiting(session, settings, age=0)
    _waiting(
        session,
        settings,
        age=40,
        status=JobStatus.SCHEDULED,
        run_at=utcnow() + timedelta(minutes=5),
    )
    _waiting(session, settings, UPDATE_INVENTORY, age=50)
    _waiting(session, settings, age=60, status=JobStatus.COMPLETED)
    session.commit()
    taken = claim_batch(session, RESERVE_STOCK.name, [], "w", 30, 2)
    assert {c.job_id for c in taken} == {oldest, older} and {c.attempt for c in taken} == {1}
    session.commit()
    rest = claim_batch(session, RESERVE_STOCK.name, [], "w", 30, 10)
    assert [c.job_id for c in rest] == [new]  # not the scheduled, other type or done ones
    assert len(close_all(session, taken + rest, JobStatus.COMPLETED)) == 3
    session.commit()
    statuses = session.scalars(select(Job.status).where(Job.id.in_([new, oldest, older])))
    assert set(statuses) == {JobStatus.COMPLETED}
    assert close_all(session, taken, JobStatus.COMPLETED) == []  # closed already: not ours
    session.rollback()


def test_a_claim_leaves_a_paused_queue_waiting(session, settings):
    job = _waiting(session, settings)
    session.add(QueuePause(queue=ORDERS, paused_by="ops", paused_at=utcnow()))
    session.commit()
    assert claim_batch(session, RESERVE_STOCK.name, [job], "w", 30, 5, unless_paused=True) == []
    session.rollback()
    assert session.get(Job, job).status is JobStatus.QUEUED


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_two_consumers_claim_disjoint_batches_without_waiting(session, settings):
    ids = [_waiting(session, settings, age=10 - n) for n in range(6)]
    session.commit()
    other_engine = make_engine(settings)
    try:
        first = claim_batch(session, RESERVE_STOCK.name, [], "a", 30, 4)  # not committed
        with make_session_factory(other_engine)() as s:
            s.execute(text("SET lock_timeout = '2s'"))  # a wait on the locked rows would fail
            second = claim_batch(s, RESERVE_STOCK.name, [], "b", 30, 10)
            s.commit()
        session.commit()
    finally:
        other_engine.dispose()
    assert {c.job_id for c in first} == set(ids[:4])  # the oldest four
    assert {c.job_id for c in second} == set(ids[4:])


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_message_skips_its_own_job_while_another_claim_holds_it(session, settings):
    """Two claims that each hold a row the other names as its own must not wait on
    each other (they deadlocked before the own rows were taken SKIP LOCKED too)."""
    ids = [_waiting(session, settings, age=10 - n) for n in range(4)]
    session.commit()
    other_engine = make_engine(settings)
    try:
        first = claim_batch(session, RESERVE_STOCK.name, [ids[3]], "a", 30, 2)  # not committed
        with make_session_factory(other_engine)() as s:
            s.execute(text("SET lock_timeout = '2s'"))  # a wait on the locked rows would fail
            second = claim_batch(s, RESERVE_STOCK.name, [ids[0], ids[2]], "b", 30, 10)
            s.commit()
        session.commit()
    finally:
        other_engine.dispose()
    assert {c.job_id for c in first} == {ids[0], ids[1], ids[3]}
    assert {c.job_id for c in second} == {ids[2]}


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_claim_reads_the_jobs_it_takes_not_the_backlog(session, settings):
    """A message's jobs and a batch's extra ones are found by key, however many jobs
    wait and whatever the statistics say (analyzed while nothing waited, as a table
    whose jobs come and go mostly is): two plans scanned every waiting job per claim."""
    done = [job_row(settings, RESERVE_STOCK) for _ in range(20_000)]  # a day's jobs, say
    session.execute(JOBS.insert(), [{**row, "status": JobStatus.COMPLETED} for row in done])
    session.commit()
    session.execute(text("ANALYZE jobs"))
    session.commit()
    backlog = [_waiting(session, settings, age=3000 - n) for n in range(3000)]
    active = _waiting(session, settings, status=JobStatus.ACTIVE)  # a duplicate delivery's
    session.commit()
    own = [*backlog[-40:], active, done[0]["id"]]

    def rows_read() -> int:
        return int(
            session.scalar(
                text(
                    "SELECT seq_tup_read + COALESCE(idx_tup_fetch, 0) "
                    "FROM pg_stat_xact_user_tables WHERE relname = 'jobs'"
                )
            )
        )

    before = rows_read()
    taken = claim_batch(session, RESERVE_STOCK.name, own, "w", 30, 10)
    read = rows_read() - before
    session.commit()
    # the message's 40 waiting jobs and the 10 oldest others; not the active or done one
    assert {c.job_id for c in taken} == {*backlog[-40:], *backlog[:10]}
    assert read < 300, f"the claim read {read} job rows to take {len(taken)}"
    for own, extra, wanted in (
        (backlog[100:150], 0, backlog[100:150]),  # a message's jobs, the consumer full
        ([backlog[200]], 0, [backlog[200]]),  # the common message: one job
        ([active], 0, []),  # a duplicate delivery
    ):
        before = rows_read()
        taken = claim_batch(session, RESERVE_STOCK.name, own, "w", 30, extra)
        assert {c.job_id for c in taken} == set(wanted)
        assert rows_read() - before < 300
        session.commit()


def test_batches_unless_a_rate_limit_counts_each_job(settings):
    assert batchable(settings, RESERVE_STOCK.name) and batchable(settings, UPDATE_INVENTORY.name)
    assert batchable(settings, "send-order-confirmation")
    limited = replace(settings, payments_rate_limit=1000)  # a token per charge
    assert not batchable(limited, "process-payment")
    unlimited = replace(settings, payments_rate_limit=0)
    assert batchable(unlimited, "process-payment")
    # a batch's calls run at once, each waiting its own: outside work does not stop it
    assert batchable(replace(unlimited, sim_gateway_latency_ms=(1, 2)), "process-payment")
    assert batchable(replace(unlimited, gateway_url="http://gw"), "process-payment")
    assert batchable(replace(settings, sim_inventory_latency_ms=(1, 2)), UPDATE_INVENTORY.name)
    assert not batchable(settings, "send-recovery-email")
    assert not batchable(replace(settings, pipeline_batch=1), CREATE_ORDER.name)
    with pytest.raises(ConfigError, match="PIPELINE_BATCH"):
        Settings.from_env(env={"PIPELINE_BATCH": "0"})


def test_jobs_of_a_batched_type_sent_together_go_as_one_message_per_batch(settings):
    from orders.pipeline.jobs import JobRef

    refs = [JobRef(f"u{n}", UPDATE_INVENTORY.name) for n in range(3)]
    refs += [JobRef("p1", "process-payment"), JobRef("p2", "process-payment")]
    refs += [JobRef("later", UPDATE_INVENTORY.name, 5.0)]
    groups = message_groups(replace(settings, pipeline_batch=2, payments_rate_limit=1000), refs)
    assert [ids for ids, _ in groups] == [["u0", "u1"], ["u2"], ["p1"], ["p2"], ["later"]]
    alone = replace(settings, pipeline_batch=1)  # its consumers run jobs alone
    assert [ids for ids, _ in message_groups(alone, refs[:3])] == [["u0"], ["u1"], ["u2"]]


def test_a_consumer_that_runs_jobs_alone_sends_a_messages_other_jobs_on(
    monkeypatch, client, session, settings, batched, dispatched
):
    import tasks

    make_product(session, sku="TEE", stock=10)
    ids = [place(client, ("TEE", 1)) for _ in range(3)]
    first, *rest = [ref.id for ref in dispatched.take()]
    monkeypatch.setattr(tasks.runtime, "settings", replace(settings, pipeline_batch=1))
    monkeypatch.setattr(tasks.runtime, "_context", batched.ctx)
    monkeypatch.setattr(tasks.runtime, "_sessions", batched.sessions)
    tasks.runtime.run_message(RESERVE_STOCK.name, first, rest)
    sent = dispatched.take()
    assert [(r.id, r.type) for r in sent[:2]] == [(i, RESERVE_STOCK.name) for i in rest]
    assert [r.type for r in sent[2:]] == ["process-payment"]  # the first ran, alone
    assert session.get(Job, first).status is JobStatus.COMPLETED
    assert {session.get(Job, other).status for other in rest} == {JobStatus.QUEUED}
    assert client.get(f"/api/orders/status/{ids[0]}").get_json()["step"] == "reserving_stock"


def test_a_message_takes_its_own_job_even_behind_a_longer_backlog(session, settings):
    older = [_waiting(session, settings, age=30 - n) for n in range(3)]
    own = _waiting(session, settings, age=0)
    session.commit()
    taken = claim_batch(session, RESERVE_STOCK.name, [own], "w", 30, 2)
    session.commit()
    assert {c.job_id for c in taken} == {own, *older[:2]}


def test_a_message_for_a_job_a_batch_here_completed_costs_no_statement(
    client, session, settings, dispatched
):
    make_product(session, sku="TEE", stock=10)
    for _ in range(3):
        place(client, ("TEE", 1))
    first, *rest = [ref.id for ref in dispatched.take()]
    engine = make_engine(settings)
    statements = []
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    try:
        drain = Drain(settings, make_session_factory(engine), dispatched, batched=True)
        assert drain.run(first, RESERVE_STOCK.name) == "completed,completed,completed"
        assert statements
        statements.clear()
        assert [drain.run(job, RESERVE_STOCK.name) for job in rest] == ["", ""]
        assert statements == []  # known done here: not even a claim
    finally:
        engine.dispose()
    statuses = session.scalars(select(Job.status).where(Job.id.in_(rest)))
    assert set(statuses) == {JobStatus.COMPLETED}


def test_a_batch_writes_the_jobs_whose_calls_returned_while_a_slow_call_waits(
    client, session, settings, dispatched, monkeypatch
):
    from orders.pipeline.calls import Callers
    from orders.pipeline.step import load_lines

    make_product(session, sku="TEE", stock=10)
    ids = [place(client, ("TEE", 1)) for _ in range(4)]
    slow = ids[0]
    others_written = threading.Event()
    writes = []

    def call(item, ctx):
        if item.checkout.public_id == slow:  # one after another, this would never return
            assert others_written.wait(10), "the quick jobs were not written first"

    def write(session, items, ctx):
        writes.append(sorted(item.checkout.public_id for item in items))
        jobs = create_order.write(session, items, ctx)
        if slow not in writes[-1] and sum(len(w) for w in writes) == 3:
            others_written.set()
        return jobs

    monkeypatch.setattr(create_order, "STEP", Step(write, load_lines, call))
    engine = make_engine(settings)
    drain = Drain(settings, make_session_factory(engine), dispatched, batched=True)
    drain.ctx.callers = Callers(8)
    try:
        ran = drain()
    finally:
        engine.dispose()
    assert others_written.is_set() and writes[-1] == [slow]
    assert outcomes(ran, "create-order")[0] == "completed,completed,completed,completed"
    for public_id in ids:
        assert client.get(f"/api/orders/status/{public_id}").get_json()["status"] == "completed"
    assert session.scalar(select(func.count()).select_from(Order)) == 4


def test_a_claim_starts_its_lease_once_it_has_a_connection(session, settings, monkeypatch):
    job = _waiting(session, settings)
    session.commit()
    engine = make_engine(settings)
    got_connection = []
    real = Session.connection

    def slow_pool(self, *args, **kwargs):  # a busy pool: the connection comes late
        time.sleep(0.3)
        got_connection.append(utcnow())
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Session, "connection", slow_pool)
    try:
        with make_session_factory(engine)() as other:
            (taken,) = claim(other, [job], "w", 30)
            other.commit()
    finally:
        engine.dispose()
    assert taken.started_at >= got_connection[0]  # not the time the claim began to wait


def test_a_message_whose_job_a_batch_took_while_it_waited_for_a_connection_claims_nothing(
    client, session, settings, dispatched, monkeypatch
):
    from orders.pipeline.messages import RUNNING_HERE

    make_product(session, sku="TEE", stock=10)
    place(client, ("TEE", 1))
    (job,) = [ref.id for ref in dispatched.take()]
    engine = make_engine(settings)
    statements = []
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    real = Session.connection

    def busy_pool(self, *args, **kwargs):  # meanwhile a batch of this process takes the job
        RUNNING_HERE.settle(0, [job])
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Session, "connection", busy_pool)
    try:
        drain = Drain(settings, make_session_factory(engine), dispatched, batched=True)
        assert drain.run(job, RESERVE_STOCK.name) == ""
    finally:
        RUNNING_HERE.discard([job])
        engine.dispose()
    # no claim that could only find the job taken (SQLite's connection begins at once)
    assert [s for s in statements if not s.startswith("BEGIN")] == []
    assert session.scalar(select(Job.status).where(Job.id == job)) is JobStatus.QUEUED


def test_a_batch_takes_no_more_jobs_than_the_queue_may_hold_in_flight(
    client, session, settings, dispatched
):
    make_product(session, sku="TEE", stock=10)
    for _ in range(5):
        place(client, ("TEE", 1))
    first = dispatched.take()[0].id
    engine = make_engine(settings)
    try:  # ORDERS_CONCURRENCY=2: the message's own job and one more, not all five
        drain = Drain(
            replace(settings, orders_concurrency=2),
            make_session_factory(engine),
            dispatched,
            batched=True,
        )
        assert drain.run(first, RESERVE_STOCK.name) == "completed,completed"
    finally:
        engine.dispose()


def test_jobs_in_flight_count_the_running_and_the_reserved():
    from orders.pipeline.messages import _Running

    running = _Running()
    assert running.reserve(limit=5, wanted=3) == 3
    assert running.reserve(limit=5, wanted=3) == 2  # 3 reserved by a claim under way
    running.settle(3, ["a", "b"])  # that claim took two
    running.settle(2, [])
    assert running.reserve(limit=5, wanted=9) == 3  # a and b run
    running.settle(3, [])
    running.discard(["a", "b"])
    assert running.reserve(limit=5, wanted=9) == 5


def test_a_message_close_behind_another_of_its_type_waits_for_more(monkeypatch):
    from orders.pipeline import messages

    slept: list[float] = []
    monkeypatch.setattr(messages.time, "sleep", slept.append)
    gathering = messages._Gathering()
    gathering.wait("reserve-stock", 0.1)  # alone: at once
    gathering.wait("create-order", 0.1)  # another type: at once
    assert slept == []
    gathering.wait("reserve-stock", 0.1)  # close behind the first: its claim can take more
    assert slept == [0.1]
    gathering.wait("reserve-stock", 0)  # off
    assert slept == [0.1]
