"""The two ways a checkout is written (one statement on PostgreSQL, one transaction
otherwise): the same rows, and an Idempotency-Key honoured under concurrency."""

import threading

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from orders.models import Checkout
from tests.factories import checkout_body, make_discount, make_product
from tests.test_api_checkout import counts, post


def test_concurrent_duplicates_make_one_checkout(app, session, settings):
    """20 threads, one key: one checkout; every request gets its 202 (the others wait
    for the first on the key's unique index, then replay it), never 409 or 5xx."""
    make_product(session, sku="TEE", stock=50)
    body = checkout_body(("TEE", 1))
    results: list[tuple[int, str | None]] = []
    barrier = threading.Barrier(20)

    def buy() -> None:
        client = app.test_client()
        barrier.wait()
        response = client.post("/api/checkout", json=body, headers={"Idempotency-Key": "same"})
        data = response.get_json().get("data", {}) if response.status_code == 202 else {}
        results.append((response.status_code, data.get("jobId")))

    threads = [threading.Thread(target=buy) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [status for status, _ in results] == [202] * 20
    assert len({job for _, job in results}) == 1
    assert counts(session)["checkouts"] == 1


class HeldCommit(Session):
    """The first request, stopped between its last statement and its commit."""

    def __init__(self, *args, dies: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.dies = dies
        self.at_commit = threading.Event()
        self.go = threading.Event()

    def commit(self) -> None:
        self.at_commit.set()
        assert self.go.wait(30)
        if self.dies:
            raise RuntimeError("the first request died before its commit")
        super().commit()


class HeldStatement:
    """The first request on PostgreSQL's one-statement path, its statement run in a
    transaction held open (in the product it commits itself as it ends)."""

    def __init__(self, engine, settings, *, dies: bool):
        self.engine, self.settings, self.dies = engine, settings, dies
        self.at_commit = threading.Event()
        self.go = threading.Event()

    def place(self, body, key):
        from orders.checkout import statement as checkout_at_once
        from orders.checkout.place import Placed, request_hash
        from orders.checkout.rows import first_rows, prepare
        from orders.domain.validation import parse_checkout
        from orders.models import Checkout as CheckoutRow

        request = parse_checkout(body, max_quantity=100, max_lines=50)
        with self.engine.connect() as conn, conn.begin() as transaction:
            prepared = prepare(conn, request, request.items, None)
            event, job = first_rows(self.settings, CheckoutRow(**prepared.checkout))
            assert checkout_at_once.write(conn, prepared, event, job, key, request_hash(body))
            self.at_commit.set()
            assert self.go.wait(30)
            if self.dies:
                transaction.rollback()
                raise RuntimeError("the first request died before its commit")
        return Placed(prepared.checkout["public_id"], "queued", replayed=False)

    def close(self) -> None:
        pass


@pytest.mark.parametrize("dies", [False, True], ids=["first-commits", "first-dies"])
def test_a_duplicate_waits_for_the_request_in_flight(app, session, settings, dies):
    """Same key while the first request is recording: the duplicate waits for it, then
    answers with its checkout (or, if it died, records its own): one checkout either way.
    On PostgreSQL both take the one-statement path, on SQLite the one-transaction path."""
    from orders.checkout.place import place_checkout
    from orders.db import make_engine

    make_product(session, sku="TEE", stock=5)
    body = checkout_body(("TEE", 1))
    engine = make_engine(settings)
    postgres = engine.dialect.name == "postgresql"
    first_session = (
        HeldStatement(engine, settings, dies=dies) if postgres else HeldCommit(engine, dies=dies)
    )
    first: dict = {}

    def first_request() -> None:
        try:
            if postgres:
                first["placed"] = first_session.place(body, "inflight")
            else:
                first["placed"] = place_checkout(
                    first_session, settings, body, None, idempotency_key="inflight"
                )
        except RuntimeError as exc:
            first["error"] = exc

    def duplicate() -> None:
        response = app.test_client().post(
            "/api/checkout", json=body, headers={"Idempotency-Key": "inflight"}
        )
        first["duplicate"] = response

    one = threading.Thread(target=first_request)
    one.start()
    assert first_session.at_commit.wait(30)
    two = threading.Thread(target=duplicate)
    two.start()
    two.join(1.0)
    assert two.is_alive(), "the duplicate answered while the first was still in flight"
    first_session.go.set()
    one.join(30)
    two.join(30)
    first_session.close()
    engine.dispose()
    response = first["duplicate"]
    assert response.status_code == 202, response.get_data(as_text=True)
    job_id = response.get_json()["data"]["jobId"]
    if dies:
        assert "error" in first
    else:
        assert job_id == first["placed"].public_id
    assert counts(session)["checkouts"] == 1
    assert session.scalar(select(Checkout.public_id)) == job_id


def _rows(session, checkout_id):
    """What a checkout wrote, minus what differs by construction (ids, times)."""
    queries = {
        "checkouts": "SELECT * FROM checkouts WHERE id = :id",
        "lines": "SELECT * FROM checkout_lines WHERE checkout_id = :id ORDER BY id",
        "events": "SELECT * FROM checkout_events WHERE checkout_id = :id ORDER BY id",
        "jobs": "SELECT * FROM jobs WHERE checkout_id = :id",
        "keys": "SELECT * FROM idempotency_keys WHERE checkout_id = :id",
    }
    varying = {"id", "checkout_id", "public_id", "created_at", "updated_at", "enqueued_at", "key"}
    found = {}
    for name, sql in queries.items():
        rows = session.execute(text(sql), {"id": checkout_id}).mappings().all()
        found[name] = [{k: v for k, v in row.items() if k not in varying} for row in rows]
    return found


@pytest.mark.postgres  # the one-statement write is PostgreSQL's; SQLite has the other only
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_both_ways_of_writing_a_checkout_write_the_same_rows(session, settings, dispatched):
    from orders.checkout import place as placing

    assert session.get_bind().dialect.name == "postgresql"

    make_product(session, sku="TEE", price_cents=2500, stock=50)
    make_product(session, sku="MUG", price_cents=1200, stock=50)
    make_discount(session, "SAVE10", 10)
    body = checkout_body(("TEE", 2), ("MUG", 1), discountCode="SAVE10")
    written = {}
    for way, key in (("at_once", "k-1"), ("one_transaction", "k-2")):
        if way == "at_once":
            placed = placing.place_checkout(session, settings, body, None, idempotency_key=key)
        else:
            asked = placing.Asked(body, key, placing.request_hash(body), None)
            placed = placing._place_in_one_transaction(session, settings, asked)
        session.expire_all()
        row = session.scalar(select(Checkout).where(Checkout.public_id == placed.public_id))
        written[way] = _rows(session, row.id)
        assert [ref.type for ref in placed.refs] == ["reserve-stock"]
    assert written["at_once"] == written["one_transaction"]
    assert len(written["at_once"]["lines"]) == 2
    assert len(written["at_once"]["keys"]) == 1


def test_a_retry_is_answered_as_accepted_even_once_its_body_would_fail(client, session):
    """The first request took the last unit; its retry (same key, same body) would now
    fail validation, and is still answered with the first's checkout."""
    make_product(session, sku="TEE", stock=1)
    body = checkout_body(("TEE", 1))
    first = post(client, body, **{"Idempotency-Key": "retry-me"})
    assert first.status_code == 202
    session.execute(text("UPDATE products SET stock = 0"))
    session.commit()
    assert post(client, body).status_code == 422  # without the key: out of stock
    again = post(client, body, **{"Idempotency-Key": "retry-me"})
    assert again.status_code == 202, again.get_data(as_text=True)
    assert again.get_json()["data"]["jobId"] == first.get_json()["data"]["jobId"]
    assert counts(session)["checkouts"] == 1


def test_a_taken_key_writes_nothing_on_either_way(client, session):
    """A replay leaves no second checkout, line, event or job behind."""
    make_product(session, sku="TEE", stock=5)
    body = checkout_body(("TEE", 1))
    assert post(client, body, **{"Idempotency-Key": "once"}).status_code == 202
    before = counts(session)
    lines = session.scalar(text("SELECT COUNT(*) FROM checkout_lines"))
    assert post(client, body, **{"Idempotency-Key": "once"}).status_code == 202
    assert counts(session) == before
    assert session.scalar(text("SELECT COUNT(*) FROM checkout_lines")) == lines
