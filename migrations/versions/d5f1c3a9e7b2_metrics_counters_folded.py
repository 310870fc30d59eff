"""metrics: checkout counters per minute, folded totals of the per-minute counters

checkout_stats_minutely counts the checkouts that end (with a histogram of their
placed-to-final time) so a scrape never reads the checkouts table; job_stats_total and
checkout_stats_total hold the per-minute rows older than a few minutes summed, and
stat_folds how far. The existing checkouts are counted here once, and both tables
folded, so the first scrape after the upgrade is as cheap as the next.

Revision ID: d5f1c3a9e7b2
Revises: d3e8a1f5c2b7
Create Date: 2026-12-06 08:00:00

"""
from datetime import UTC, datetime, timedelta

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'd5f1c3a9e7b2'
down_revision = 'd3e8a1f5c2b7'
branch_labels = None
depends_on = None

# orders.models.ops.LATENCY_BUCKETS_MS as of this revision
BOUNDS_MS = (50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000)
BUCKETS = tuple(f"le_{ms}" for ms in BOUNDS_MS) + ("le_inf",)
VALUES = ("count", "total_ms", *BUCKETS)
FOLD_LAG = timedelta(minutes=10)


def _histogram():
    return [
        sa.Column('count', sa.Integer(), nullable=False),
        sa.Column('total_ms', sa.BigInteger(), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in BUCKETS),
    ]


def upgrade():
    op.create_table('checkout_stats_minutely',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('minute', sa.DateTime(), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    *_histogram(),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_checkout_stats_minutely')),
    sa.UniqueConstraint('minute', 'outcome', 'code', name='uq_checkout_stats_minute_key')
    )
    with op.batch_alter_table('checkout_stats_minutely', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_checkout_stats_minutely_minute'), ['minute'], unique=False)

    op.create_table('checkout_stats_total',
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    *_histogram(),
    sa.PrimaryKeyConstraint('outcome', 'code', name=op.f('pk_checkout_stats_total'))
    )
    op.create_table('job_stats_total',
    sa.Column('queue', sa.String(length=20), nullable=False),
    sa.Column('type', sa.String(length=40), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    *_histogram(),
    sa.PrimaryKeyConstraint('queue', 'type', 'outcome', name=op.f('pk_job_stats_total'))
    )
    op.create_table('stat_folds',
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('folded_until', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_stat_folds'))
    )

    _count_existing_checkouts()
    horizon = (datetime.now(UTC).replace(tzinfo=None) - FOLD_LAG).replace(second=0, microsecond=0)
    _fold('job_stats_minutely', 'job_stats_total', ('queue', 'type', 'outcome'), horizon)
    _fold('checkout_stats_minutely', 'checkout_stats_total', ('outcome', 'code'), horizon)
    if op.get_bind().dialect.name == 'postgresql':  # plan the first scrapes on real numbers
        op.execute('ANALYZE checkout_stats_minutely, checkout_stats_total, job_stats_total')


def _count_existing_checkouts():
    """One row per minute, outcome and code for the checkouts that already ended."""
    if op.get_bind().dialect.name == 'postgresql':
        minute = "date_trunc('minute', finished_at)"
        ms = "extract(epoch from finished_at - created_at) * 1000"
    else:  # SQLite stores SQLAlchemy's text format: keep it, so minutes compare as text
        minute = "strftime('%Y-%m-%d %H:%M:00.000000', finished_at)"
        ms = "(julianday(finished_at) - julianday(created_at)) * 86400000.0"
    buckets = []
    low = None
    for bound, name in zip((*BOUNDS_MS, None), BUCKETS):
        above = f"ms > {low}" if low is not None else "1 = 1"
        below = f"ms <= {bound}" if bound is not None else "1 = 1"
        buckets.append(f"SUM(CASE WHEN {above} AND {below} THEN 1 ELSE 0 END)")
        low = bound
    op.execute(
        f"INSERT INTO checkout_stats_minutely (minute, outcome, code, {', '.join(VALUES)}) "
        f"SELECT minute, status, code, COUNT(*), CAST(SUM(ms) AS BIGINT), {', '.join(buckets)} "
        f"FROM (SELECT {minute} AS minute, status, "
        "CASE WHEN status = 'failed' THEN COALESCE(error_code, 'processing_error') ELSE '' END"
        f" AS code, CASE WHEN {ms} > 0 THEN {ms} ELSE 0 END AS ms FROM checkouts "
        "WHERE status IN ('completed', 'failed') AND finished_at IS NOT NULL) AS ended "
        "GROUP BY minute, status, code"
    )


def _fold(minutely, total, keys, horizon):
    source = sa.table(minutely, sa.column('minute', sa.DateTime), *map(sa.column, (*keys, *VALUES)))
    target = sa.table(total, *map(sa.column, (*keys, *VALUES)))
    sums = (
        sa.select(*(source.c[k] for k in keys), *(sa.func.sum(source.c[v]) for v in VALUES))
        .where(source.c.minute < horizon)
        .group_by(*(source.c[k] for k in keys))
    )
    op.get_bind().execute(target.insert().from_select([*keys, *VALUES], sums))
    folds = sa.table('stat_folds', sa.column('name'), sa.column('folded_until', sa.DateTime))
    op.get_bind().execute(folds.insert().values(name=minutely, folded_until=horizon))


def downgrade():
    op.drop_table('stat_folds')
    op.drop_table('job_stats_total')
    op.drop_table('checkout_stats_total')
    with op.batch_alter_table('checkout_stats_minutely', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_checkout_stats_minutely_minute'))
    op.drop_table('checkout_stats_minutely')
