"""The upgrade that adds the checkout counters counts the checkouts that already ended
(and folds both counter tables), on each backend."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from orders.db import utcnow
from orders.domain.states import status_of
from orders.models import Checkout, CheckoutStage, CheckoutStatMinute, CheckoutStatTotal, StatFold
from orders.pipeline import folds, stats
from tests.support import RecordingDispatch

BEFORE_COUNTERS = "d3e8a1f5c2b7"


def migrate(url: str, data_dir: Path, revision: str, down: bool = False) -> None:
    from flask_migrate import downgrade, upgrade

    from app import create_app

    app = create_app({"database_url": url, "data_dir": data_dir, "DISPATCH": RecordingDispatch()})
    with app.app_context():
        (downgrade if down else upgrade)(revision=revision)
        from orders.web.extensions import db

        db.engine.dispose()


@pytest.fixture
def before_counters(database_url, tmp_path):
    """The test's database at the revision before the counters; at head again after,
    even if the test fails (the database is shared by the worker's later tests)."""
    migrate(database_url, tmp_path, BEFORE_COUNTERS, down=True)
    yield database_url
    migrate(database_url, tmp_path, "head")


def test_the_upgrade_counts_the_checkouts_that_already_ended(before_counters, tmp_path):
    database_url = before_counters
    engine = create_engine(database_url)
    ended_at = (utcnow() - timedelta(hours=2)).replace(second=42, microsecond=5)
    minute = ended_at.replace(second=0, microsecond=0)
    shapes = [  # (stage, placed-to-final seconds, error code)
        (CheckoutStage.COMPLETED, 0.03, None),
        (CheckoutStage.COMPLETED, 3.0, None),
        (CheckoutStage.FAILED, 1.5, "payment_declined"),
        (CheckoutStage.FAILED, 0.2, None),
        (CheckoutStage.QUEUED, None, None),
    ]
    with Session(engine) as session:
        for n, (stage, seconds, code) in enumerate(shapes):
            placed = ended_at - timedelta(seconds=seconds or 0)
            session.add(
                Checkout(
                    public_id=f"old{n}",
                    status=status_of(stage),
                    stage=stage,
                    email="old@example.com",
                    subtotal_cents=100,
                    total_cents=100,
                    payment_token="tok_visa",
                    error_code=code,
                    created_at=placed,
                    updated_at=ended_at,
                    finished_at=ended_at if seconds is not None else None,
                )
            )
        session.commit()
    migrate(database_url, tmp_path, "head")

    with Session(engine) as session:
        rows = {(r.outcome, r.code): r for r in session.scalars(select(CheckoutStatMinute)).all()}
        assert {key: r.count for key, r in rows.items()} == {
            ("completed", ""): 2,
            ("failed", "payment_declined"): 1,
            ("failed", "processing_error"): 1,
        }
        assert {r.minute for r in rows.values()} == {minute}
        completed = rows[("completed", "")]
        assert (completed.le_50, completed.le_5000, completed.count) == (1, 1, 2)
        assert 3000 <= completed.total_ms <= 3031
        assert rows[("failed", "payment_declined")].le_2500 == 1
        assert rows[("failed", "processing_error")].le_250 == 1
        # two hours old: folded into the totals already
        marks = dict(session.execute(select(StatFold.name, StatFold.folded_until)).all())
        assert set(marks) == {"job_stats_minutely", "checkout_stats_minutely"}
        assert utcnow() - timedelta(minutes=11) <= marks["checkout_stats_minutely"]
        totals = {(t.outcome, t.code): t.count for t in session.scalars(select(CheckoutStatTotal))}
        assert totals == {key: r.count for key, r in rows.items()}
        every = stats.checkout_totals(session)
        assert {key: t.count for key, t in every.items()} == totals  # not counted twice
        assert folds.folded_until(session, folds.CHECKOUT_STATS) == marks["checkout_stats_minutely"]
    engine.dispose()
