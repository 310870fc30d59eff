"""A scrape of /metrics costs the same for a shop of a million checkouts as for a new one.

No timed asserts: PostgreSQL's own plans say what every statement of a scrape reads
(``EXPLAIN ANALYZE``): no sequential scan of the checkouts or the per-minute counters,
and a bounded number of rows examined, whatever the shop's size. The scrape's wall time
before and after is measured by hand (docs/operations.md, "What a scrape costs").
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine

from orders.config import Settings
from orders.db import make_engine, make_session_factory
from orders.environ import database_url_for_sqlalchemy
from orders.ops.metrics import render_metrics
from tests import bigshop
from tests.conftest import POSTGRES_URL
from tests.stack import postgres_database
from tests.support import RecordingDispatch

# loading a million checkouts takes minutes: the first test carries the fixture
pytestmark = [pytest.mark.postgres, pytest.mark.xdist_group("bigshop"), pytest.mark.timeout(900)]

BEFORE_COUNTERS = "d3e8a1f5c2b7"  # the revision before the counters and their folds
BIG = 1_000_000
ROWS_PER_STATEMENT = 2_000
"""What one statement of a scrape may examine: a few minutes of counter rows, the totals,
the live checkouts and jobs; never a share of the million."""
BIG_TABLES = {"checkouts", "checkout_events", "job_stats_minutely", "checkout_stats_minutely"}


def upgrade(url: str, data_dir: Path, revision: str = "head") -> None:
    from flask_migrate import upgrade as alembic_upgrade

    from app import create_app

    app = create_app({"database_url": url, "data_dir": data_dir, "DISPATCH": RecordingDispatch()})
    with app.app_context():
        alembic_upgrade(revision=revision)
        from orders.web.extensions import db

        db.engine.dispose()


@pytest.fixture(scope="module")
def big_shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Settings]]:
    """A million checkouts and a month of counters, loaded before the upgrade that
    counts and folds them (as on a shop that upgrades)."""
    assert POSTGRES_URL
    data_dir = tmp_path_factory.mktemp("bigshop")
    with postgres_database(POSTGRES_URL) as url:
        upgrade(url, data_dir, BEFORE_COUNTERS)
        engine = create_engine(database_url_for_sqlalchemy(url))
        bigshop.load(engine, BIG)
        engine.dispose()
        upgrade(url, data_dir)
        settings = Settings.from_env(env={}, overrides={"data_dir": data_dir, "database_url": url})
        yield url, settings


def samples(body: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def scrape_statements(engine: Engine, settings: Settings) -> tuple[bytes, list[tuple[str, Any]]]:
    """One scrape, and every statement it sent with its parameters."""
    sent: list[tuple[str, Any]] = []

    def remember(_conn, _cursor, statement, parameters, _context, _many):  # type: ignore[no-untyped-def]
        sent.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", remember)
    try:
        body = render_metrics(make_session_factory(engine), settings)
    finally:
        event.remove(engine, "before_cursor_execute", remember)
    return body, sent


def plan_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from plan_nodes(child)


def examined(node: dict[str, Any]) -> float:
    """Rows a scan node read: returned plus filtered out, times its loops."""
    read = node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)
    read += node.get("Rows Removed by Index Recheck", 0)
    return float(read * node.get("Actual Loops", 1))


def test_the_upgrade_counts_the_checkouts_that_ended(big_shop):
    url, settings = big_shop
    engine = make_engine(settings)
    try:
        values = samples(render_metrics(make_session_factory(engine), settings))
    finally:
        engine.dispose()
    failed = BIG // 50
    assert values[("shop_checkouts", (("status", "completed"),))] == BIG - failed
    assert values[("shop_checkouts", (("status", "failed"),))] == failed
    declined = (("code", "payment_declined"), ("outcome", "failed"))
    assert values[("shop_checkout_outcomes_total", declined)] == failed
    live = bigshop.IN_FLIGHT // 2
    assert values[("shop_checkouts", (("status", "queued"),))] == live
    assert values[("shop_checkouts", (("status", "processing"),))] == live
    assert values[("shop_checkouts_placed_total", ())] == BIG + bigshop.IN_FLIGHT
    assert values[("shop_checkouts_needing_attention", ())] == bigshop.NEEDING_ATTENTION
    histogram = (("le", "+Inf"), ("outcome", "completed"))
    assert values[("shop_checkout_duration_seconds_bucket", histogram)] == BIG - failed
    # placed-to-final times are 0.2 s to 4.1 s: a median in the 1-2.5 s bucket
    assert 1.0 <= values[("shop_checkout_duration_seconds_last_hour", (("quantile", "0.5"),))]
    assert values[("shop_checkout_duration_seconds_last_hour", (("quantile", "0.5"),))] <= 2.5
    minutes = bigshop.DAYS * 1440
    labels = (("outcome", "completed"), ("queue", "payments"), ("type", "process-payment"))
    assert values[("shop_jobs_processed_total", labels)] == 20 * minutes


def test_a_scrape_reads_no_share_of_a_million_checkouts(big_shop):
    url, settings = big_shop
    engine = make_engine(settings)
    try:
        render_metrics(make_session_factory(engine), settings)  # folds, if anything is due
        body, sent = scrape_statements(engine, settings)
        assert b"shop_checkouts" in body
        reads = [(sql, params) for sql, params in sent if sql.lstrip().upper().startswith("SELECT")]
        assert len(reads) >= 8
        with engine.connect() as conn:
            for sql, params in reads:
                nodes = list(plan_nodes(plan_json(conn, sql, params)))
                seq = [n.get("Relation Name") for n in nodes if n["Node Type"] == "Seq Scan"]
                assert not set(seq) & BIG_TABLES, (sql, seq)
                scans = [n for n in nodes if "Scan" in n["Node Type"]]
                total = sum(examined(n) for n in scans)
                assert total <= ROWS_PER_STATEMENT, (sql, total)
    finally:
        engine.dispose()


def plan_json(conn: Any, sql: str, params: Any) -> dict[str, Any]:
    value = conn.exec_driver_sql(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", params).scalar_one()
    document = json.loads(value) if isinstance(value, str) else value
    return dict(document[0]["Plan"])


def test_the_checks_above_see_a_full_scan(big_shop):
    """The plan check can fail: reading every ended checkout is caught."""
    url, settings = big_shop
    engine = make_engine(settings)
    try:
        with engine.connect() as conn:
            sql = "SELECT status, count(*) FROM checkouts GROUP BY status"
            nodes = list(plan_nodes(plan_json(conn, sql, {})))
    finally:
        engine.dispose()
    assert sum(examined(n) for n in nodes if "Scan" in n["Node Type"]) >= BIG
