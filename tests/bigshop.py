"""A month-old shop with a million checkouts, written by PostgreSQL itself
(``generate_series``: seconds, not minutes), for the cost of a metrics scrape."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Engine

DAYS = 29
IN_FLIGHT = 200
NEEDING_ATTENTION = 20

_CHECKOUTS = """
INSERT INTO checkouts (public_id, status, stage, progress, email, subtotal_cents,
    discount_cents, total_cents, payment_token, payment_attempt, error_code,
    needs_attention, mode, created_at, updated_at, finished_at)
SELECT 'big' || g, s.status, s.status, 100, 'shopper' || (g % 5000) || '@example.com',
    2500, 0, 2500, 'tok_visa', 1, s.code, false, 'async', placed, placed,
    placed + make_interval(secs => 0.2 + (g % 40) * 0.1)
FROM generate_series(1, :n) AS g,
    LATERAL (SELECT (now() AT TIME ZONE 'utc') - make_interval(secs => g * :spacing) AS placed) p,
    LATERAL (SELECT CASE WHEN g % 50 = 0 THEN 'failed' ELSE 'completed' END AS status,
                    CASE WHEN g % 50 = 0 THEN 'payment_declined' END AS code) s
"""

_LIVE = """
INSERT INTO checkouts (public_id, status, stage, progress, email, subtotal_cents,
    discount_cents, total_cents, payment_token, payment_attempt, needs_attention, mode,
    created_at, updated_at)
SELECT 'live' || g,
    CASE WHEN g % 2 = 0 THEN 'queued' ELSE 'processing' END,
    CASE WHEN g % 2 = 0 THEN 'queued' ELSE 'charging_payment' END,
    0, 'live@example.com', 2500, 0, 2500, 'tok_visa', 1, g <= :attention, 'async',
    now() AT TIME ZONE 'utc', now() AT TIME ZONE 'utc'
FROM generate_series(1, :n) AS g
"""

# a month of per-minute job counters: five job types completing every minute
_JOB_STATS = """
INSERT INTO job_stats_minutely (minute, queue, type, outcome, count, total_ms, le_50,
    le_100, le_250, le_500, le_1000, le_2500, le_5000, le_10000, le_30000, le_inf)
SELECT date_trunc('minute', now() AT TIME ZONE 'utc') - make_interval(mins => m),
    t.queue, t.type, 'completed', 20, 1600, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0
FROM generate_series(1, :minutes) AS m,
    (VALUES ('orders', 'reserve-stock'), ('payments', 'process-payment'),
            ('orders', 'create-order'), ('orders', 'update-inventory'),
            ('notifications', 'send-order-confirmation')) AS t(queue, type)
"""


def load(engine: Engine, checkouts: int = 1_000_000) -> None:
    """``checkouts`` ended over the last :data:`DAYS` days (2 % declined), a few live
    ones (some needing attention), a month of job counters; then ANALYZE."""
    with engine.begin() as conn:
        spacing = DAYS * 86400 / checkouts
        conn.execute(text(_CHECKOUTS), {"n": checkouts, "spacing": spacing})
        conn.execute(text(_LIVE), {"n": IN_FLIGHT, "attention": NEEDING_ATTENTION})
        conn.execute(text(_JOB_STATS), {"minutes": DAYS * 1440})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE"))
