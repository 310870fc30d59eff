"""checkouts, jobs: the W3C trace context a checkout's jobs continue

Revision ID: d3e8a1f5c2b7
Revises: c4d8e2a6f913
Create Date: 2026-12-06 08:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'd3e8a1f5c2b7'
down_revision = 'c4d8e2a6f913'
branch_labels = None
depends_on = None


def upgrade():
    # nullable, no default: on PostgreSQL a metadata-only change, no table rewrite
    with op.batch_alter_table('checkouts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('trace_context', sa.String(length=600), nullable=True))
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('trace_context', sa.String(length=600), nullable=True))


def downgrade():
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('trace_context')
    with op.batch_alter_table('checkouts', schema=None) as batch_op:
        batch_op.drop_column('trace_context')
