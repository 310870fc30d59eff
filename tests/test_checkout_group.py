"""Checkouts written together (orders.checkout.group, checkout_at_once.
write_many): one statement writes many, and each checkout keeps its own outcome: its
guard, its Idempotency-Key, a value the database refuses."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest
from sqlalchemy import Engine, create_engine, select, text

from orders.checkout import group as checkout_group
from orders.checkout import statement as checkout_at_once
from orders.checkout.rows import first_rows, prepare, read_products
from orders.checkout.statement import Pending
from orders.config import Settings
from orders.domain.validation import parse_checkout
from orders.models import Checkout, CheckoutEvent, CheckoutLine, IdempotencyKey, Job
from tests.factories import checkout_body, make_product
from tests.test_api_checkout import post

pytestmark = [
    pytest.mark.postgres,  # the one-statement write is PostgreSQL's
    pytest.mark.parametrize("database_url", ["postgres"], indirect=True),
]


@pytest.fixture
def engine(settings: Settings) -> Engine:
    engine = create_engine(settings.sqlalchemy_url)
    yield engine
    engine.dispose()


def pending(
    engine: Engine,
    settings: Settings,
    *items: tuple[str, int],
    key: str | None = None,
    guarded: bool = False,
    email: str = "ann@example.com",
) -> Pending:
    request = parse_checkout(checkout_body(*items, email=email), max_quantity=20, max_lines=50)
    with engine.connect() as conn:
        products = read_products(conn, request.items)
    prepared = prepare(None, request, request.items, None, products)
    event, job = first_rows(settings, Checkout(**prepared.checkout))
    return Pending(prepared, event, job, key, "hash" if key else "", guarded)


def write_many(engine: Engine, batch: Sequence[Pending]) -> list[tuple[bool, int | None]]:
    with engine.connect() as conn:
        return checkout_at_once.write_many(
            conn.execution_options(isolation_level="AUTOCOMMIT"), batch
        )


def rows_of(session, checkout_id: int) -> tuple[Checkout, list, list, list]:
    session.expire_all()
    checkout = session.get(Checkout, checkout_id)
    lines = session.scalars(select(CheckoutLine).where(CheckoutLine.checkout_id == checkout_id))
    events = session.scalars(select(CheckoutEvent).where(CheckoutEvent.checkout_id == checkout_id))
    jobs = session.scalars(select(Job).where(Job.checkout_id == checkout_id))
    return checkout, list(lines), list(events), list(jobs)


def test_one_statement_writes_each_checkouts_own_rows(engine, settings, session):
    make_product(session, sku="TEE", price_cents=2500, stock=50, name='Tee — café ☕ "q"')
    make_product(session, sku="MUG", price_cents=900, stock=50)
    batch = [
        pending(engine, settings, ("TEE", 1), key="k1", email="a@example.com"),
        pending(engine, settings, ("MUG", 2), ("TEE", 3), email="b@example.com"),
        pending(engine, settings, ("MUG", 1), key="k3", guarded=True, email="c@example.com"),
    ]
    written = write_many(engine, batch)
    assert [fresh for fresh, _ in written] == [True, True, True]
    ids = [checkout_id for _, checkout_id in written]
    assert None not in ids and len(set(ids)) == 3
    for one, checkout_id in zip(batch, ids, strict=True):
        checkout, lines, events, jobs = rows_of(session, checkout_id)
        assert checkout.public_id == one.prepared.checkout["public_id"]
        assert checkout.email == one.prepared.checkout["email"]
        assert checkout.total_cents == one.prepared.checkout["total_cents"]
        assert [(line.sku, line.name, line.quantity) for line in lines] == [
            (line["sku"], line["name"], line["quantity"]) for line in one.prepared.lines
        ]
        assert checkout.created_at == one.prepared.checkout["created_at"]
        assert [event.message for event in events] == ["Order received"]
        assert [job.id for job in jobs] == [one.job["id"]]
    assert "café ☕" in rows_of(session, ids[0])[1][0].name
    keys = {row.key: row.checkout_id for row in session.scalars(select(IdempotencyKey))}
    assert keys == {"k1": ids[0], "k3": ids[2]}


def test_a_refused_guard_or_a_taken_key_writes_nothing_of_that_checkout_only(
    engine, settings, session
):
    tee = make_product(session, sku="TEE", price_cents=2500, stock=50)
    make_product(session, sku="MUG", price_cents=900, stock=50)
    write_many(engine, [pending(engine, settings, ("MUG", 1), key="taken")])
    stale = pending(engine, settings, ("TEE", 1), guarded=True, email="stale@example.com")
    session.execute(text("UPDATE products SET price_cents = 2600 WHERE id = :id"), {"id": tee.id})
    session.commit()
    batch = [
        stale,  # its remembered price is not the live one
        pending(engine, settings, ("MUG", 1), key="taken", email="again@example.com"),
        pending(engine, settings, ("MUG", 1), key="new", email="new@example.com"),
        pending(engine, settings, ("MUG", 1), key="twice", email="first@example.com"),
        pending(engine, settings, ("MUG", 1), key="twice", email="second@example.com"),
    ]
    written = write_many(engine, batch)
    assert written[0] == (False, None)
    assert written[1] == (True, None)
    assert written[2][0] and written[2][1] is not None
    # the same key twice in one statement: the first writes, the second finds it taken
    assert written[3][0] and written[3][1] is not None
    assert written[4] == (True, None)
    session.expire_all()
    emails = set(session.scalars(select(Checkout.email)))
    assert emails == {"ann@example.com", "new@example.com", "first@example.com"}
    assert session.scalar(select(text("COUNT(*)")).select_from(CheckoutLine)) == 3


def test_a_value_the_database_refuses_fails_its_own_checkout_only(engine, settings, session):
    make_product(session, sku="TEE", stock=50)
    good = [pending(engine, settings, ("TEE", 1), email=f"{n}@example.com") for n in range(3)]
    bad = pending(engine, settings, ("TEE", 1), email="x@example.com")
    bad.prepared.checkout["email"] = "x" * 300 + "@example.com"  # over the column's 254
    outcomes = checkout_group._write(engine, [good[0], bad, good[1], good[2]])
    assert isinstance(outcomes[1], Exception) and "too long" in str(outcomes[1])
    for outcome in (outcomes[0], outcomes[2], outcomes[3]):
        assert outcome[0] and outcome[1] is not None
    session.expire_all()
    assert session.scalar(select(text("COUNT(*)")).select_from(Checkout)) == 3


def test_checkouts_placed_during_a_write_share_the_next_statement(app, session, monkeypatch):
    """Through the API: while one checkout's write is held, eight more arrive; they are
    written together, in one statement, and each gets its own 202 and its own rows."""
    make_product(session, sku="TEE", stock=100)
    real = checkout_at_once.write_many
    batches: list[int] = []
    first = threading.Event()
    go = threading.Event()

    def held(conn, batch):
        batches.append(len(batch))
        if len(batches) == 1:
            first.set()
            assert go.wait(10)
        return real(conn, batch)

    post(app.test_client(), checkout_body(("TEE", 1)))  # remembers the product
    monkeypatch.setattr(checkout_group, "write_many", held)
    answers: dict[str, object] = {}

    def buy(name: str) -> None:
        response = post(app.test_client(), checkout_body(("TEE", 1), email=f"{name}@example.com"))
        answers[name] = (response.status_code, response.get_json()["data"]["jobId"])

    threads = [threading.Thread(target=buy, args=("first",))]
    threads[0].start()
    assert first.wait(10)
    threads += [threading.Thread(target=buy, args=(f"b{n}",)) for n in range(8)]
    for thread in threads[1:]:
        thread.start()
    with app.app_context():
        from orders.web.extensions import db

        writer = checkout_group.writer(db.engine, 50)
    while len(writer._queued) < 8:
        threading.Event().wait(0.01)
    go.set()
    for thread in threads:
        thread.join(20)
    assert batches == [1, 8]
    assert sorted(status for status, _ in answers.values()) == [202] * 9
    session.expire_all()
    by_email = {c.email: c.public_id for c in session.scalars(select(Checkout))}
    for name, (_, job_id) in answers.items():
        assert by_email[f"{name}@example.com"] == job_id
    assert session.scalar(select(text("COUNT(*)")).select_from(Job)) == 10


def test_a_checkout_whose_batch_writer_was_stopped_gets_a_503(engine, settings, session):
    """The request writing a batch is killed mid-write (a BaseException, as gevent's
    GreenletExit): whether the batch committed is unknown, so its batch-mate answers
    503 (retry with the same key), never a 500 or a wait without end."""
    from orders.errors import DatabaseUnavailable

    class Killed(BaseException):
        pass

    make_product(session, sku="TEE", stock=50)
    writer = checkout_group.writer(engine, 50)
    real = writer.write
    held = threading.Event()
    go = threading.Event()

    def write(batch):
        if not held.is_set():  # the first batch: held while two more queue
            held.set()
            assert go.wait(10)
            return real(batch)
        raise Killed()  # the second batch's writer is killed

    writer.write = write
    got: dict[str, object] = {}

    def place(name: str) -> None:
        try:
            got[name] = checkout_group.write(engine, pending(engine, settings, ("TEE", 1)), 50)
        except BaseException as exc:  # noqa: BLE001 - the outcome under test
            got[name] = exc

    threads = [threading.Thread(target=place, args=("first",))]
    threads[0].start()
    assert held.wait(10)
    threads += [threading.Thread(target=place, args=(name,)) for name in ("b", "c")]
    for thread in threads[1:]:
        thread.start()
    while len(writer._queued) < 2:
        threading.Event().wait(0.01)
    go.set()
    for thread in threads:
        thread.join(20)
        assert not thread.is_alive()
    assert got["first"][0] and got["first"][1] is not None
    outcomes = sorted(type(got[name]).__name__ for name in ("b", "c"))
    assert outcomes == ["DatabaseUnavailable", "Killed"]
    mate = got["b"] if isinstance(got["b"], DatabaseUnavailable) else got["c"]
    assert mate.status == 503
