"""The stored counters behind /metrics, on each backend: checkouts counted when they end,
per-minute rows folded into totals once, all-time sums that agree before and after."""

from __future__ import annotations

from datetime import datetime, timedelta

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from orders.db import make_engine, make_session_factory, utcnow
from orders.domain.latency import bucket_index, quantile_ms
from orders.models import (
    Checkout,
    CheckoutStatMinute,
    JobStatMinute,
    JobStatTotal,
    StatFold,
)
from orders.models.ops import BUCKET_COLUMNS, LATENCY_BUCKETS_MS
from orders.pipeline import folds, stats
from tests.factories import checkout_body, make_product

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def metrics(client) -> Samples:  # type: ignore[no-untyped-def]
    response = client.get("/metrics")
    assert response.status_code == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.get_data(as_text=True))
        for s in family.samples
    }


def place(client, sku: str, token: str = "tok_visa") -> str:  # type: ignore[no-untyped-def]
    response = client.post("/api/checkout", json=checkout_body((sku, 1), paymentToken=token))
    assert response.status_code == 202, response.get_json()
    return str(response.get_json()["data"]["jobId"])


def test_checkouts_are_counted_when_they_end_and_when_they_come_back(client, session, drain):
    make_product(session, sku="MUG", stock=20)
    for _ in range(3):
        place(client, "MUG")
    declined = place(client, "MUG", "tok_declined")
    drain()
    waiting = place(client, "MUG")  # not drained: it stays queued

    values = metrics(client)
    completed = (("code", ""), ("outcome", "completed"))
    card = (("code", "payment_declined"), ("outcome", "failed"))
    assert values[("shop_checkout_outcomes_total", completed)] == 3
    assert values[("shop_checkout_outcomes_total", card)] == 1
    assert values[("shop_checkouts", (("status", "completed"),))] == 3
    assert values[("shop_checkouts", (("status", "failed"),))] == 1
    assert values[("shop_checkouts", (("status", "queued"),))] == 1
    assert values[("shop_checkouts_placed_total", ())] == 5
    assert values[("shop_checkout_duration_seconds_count", (("outcome", "completed"),))] == 3
    failed = (("le", "+Inf"), ("outcome", "failed"))
    assert values[("shop_checkout_duration_seconds_bucket", failed)] == 1

    # the stored histogram agrees with the checkouts' own times
    session.expire_all()
    ended = session.scalars(select(Checkout).where(Checkout.finished_at.is_not(None))).all()
    buckets = [0] * len(BUCKET_COLUMNS)
    for checkout in ended:
        assert checkout.finished_at is not None
        ms = (checkout.finished_at - checkout.created_at).total_seconds() * 1000
        buckets[bucket_index(LATENCY_BUCKETS_MS, ms)] += 1
    session.commit()
    median = values[("shop_checkout_duration_seconds_last_hour", (("quantile", "0.5"),))]
    expected = quantile_ms(LATENCY_BUCKETS_MS, buckets, 0.5)
    assert expected is not None and median == expected / 1000

    # another card: the failed checkout goes back to the queue, then completes
    response = client.post("/api/payments", json={"jobId": declined, "paymentToken": "tok_visa"})
    assert response.status_code == 202, response.get_json()
    between = metrics(client)
    requeued = (("code", "payment_declined"), ("outcome", "requeued"))
    assert between[("shop_checkout_outcomes_total", requeued)] == 1
    assert between[("shop_checkouts", (("status", "failed"),))] == 0
    assert between[("shop_checkouts", (("status", "queued"),))] == 2
    drain()
    after = metrics(client)
    assert after[("shop_checkout_outcomes_total", completed)] == 5  # with the one waiting
    assert after[("shop_checkouts", (("status", "completed"),))] == 5
    assert after[("shop_checkouts", (("status", "failed"),))] == 0
    assert after[("shop_checkouts_placed_total", ())] == 5
    statuses = dict(
        session.execute(select(Checkout.status, func.count()).group_by(Checkout.status)).all()
    )
    session.commit()
    assert {s.value: n for s, n in statuses.items()} == {"completed": 5}
    assert waiting


def _minute_row(minute: datetime, queue: str, job_type: str, count: int) -> JobStatMinute:
    values = dict.fromkeys(BUCKET_COLUMNS, 0)
    values["le_100"] = count
    return JobStatMinute(
        minute=minute,
        queue=queue,
        type=job_type,
        outcome="completed",
        count=count,
        total_ms=80 * count,
        **values,
    )


def _all_time(session) -> dict[tuple[str, ...], int]:  # type: ignore[no-untyped-def]
    return {key: totals.count for key, totals in stats.totals_by(session).items()}


def test_folding_adds_each_old_minute_to_the_totals_once(session):
    session.execute(delete(StatFold))  # as if never folded
    now = utcnow().replace(second=0, microsecond=0)
    for minutes_ago in (600, 90, 30, 11, 3, 0):
        session.add(_minute_row(now - timedelta(minutes=minutes_ago), "orders", "reserve-stock", 2))
    session.add(_minute_row(now - timedelta(days=40), "payments", "process-payment", 7))
    session.commit()
    everything = {
        ("orders", "reserve-stock", "completed"): 12,
        ("payments", "process-payment", "completed"): 7,
    }
    assert _all_time(session) == everything  # never folded: every minute row
    session.commit()

    assert folds.fold(session, folds.JOB_STATS, now)
    mark = folds.folded_until(session, folds.JOB_STATS)
    assert mark == now - folds.FOLD_LAG
    totals = {
        (row.queue, row.type): row.count for row in session.scalars(select(JobStatTotal)).all()
    }
    assert totals == {("orders", "reserve-stock"): 8, ("payments", "process-payment"): 7}
    assert _all_time(session) == everything  # totals + the minutes from the mark
    assert not folds.fold(session, folds.JOB_STATS, now + timedelta(minutes=2))  # not due

    assert folds.fold(session, folds.JOB_STATS, now + timedelta(minutes=30))
    totals = {
        (row.queue, row.type): row.count for row in session.scalars(select(JobStatTotal)).all()
    }
    assert totals == {("orders", "reserve-stock"): 12, ("payments", "process-payment"): 7}
    assert _all_time(session) == everything
    # the minute rows stay for the charts; windows still read them
    assert session.scalar(select(func.count()).select_from(JobStatMinute)) == 7
    window = stats.totals_by(session, now - timedelta(minutes=31))
    assert window[("orders", "reserve-stock", "completed")].count == 8
    session.commit()


def test_a_fold_that_lost_the_race_adds_nothing(session, settings, monkeypatch):
    """Two scrapes fold at once: the mark moves once, so the minutes are added once."""
    now = utcnow().replace(second=0, microsecond=0)
    session.execute(delete(StatFold))
    session.add(_minute_row(now - timedelta(minutes=20), "orders", "create-order", 4))
    stale = now - timedelta(hours=1)
    session.add(StatFold(name="job_stats_minutely", folded_until=stale))
    session.commit()
    engine = make_engine(settings)
    other = make_session_factory(engine)()
    read = folds.folded_until

    def read_then_lose(s: Session, source: folds.Source) -> datetime | None:
        mark = read(s, source)  # ... and the other scrape moves the mark meanwhile
        other.execute(update(StatFold).values(folded_until=now - timedelta(minutes=10)))
        other.commit()
        return mark

    monkeypatch.setattr(folds, "folded_until", read_then_lose)
    try:
        assert not folds.fold(session, folds.JOB_STATS, now)
    finally:
        other.close()
        engine.dispose()
    assert session.scalar(select(func.count()).select_from(JobStatTotal)) == 0
    session.commit()


def test_the_checkout_minute_rows_keep_one_row_per_minute_outcome_and_code(client, session, drain):
    make_product(session, sku="CAP", stock=5)
    place(client, "CAP")
    place(client, "CAP", "tok_declined")
    drain()
    rows = session.scalars(select(CheckoutStatMinute)).all()
    assert sorted((r.outcome, r.code, r.count) for r in rows) == [
        ("completed", "", 1),
        ("failed", "payment_declined", 1),
    ]
    session.commit()
