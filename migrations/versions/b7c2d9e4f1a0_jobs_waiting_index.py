"""jobs: a partial index of the waiting jobs by type and age (batch claims)

Revision ID: b7c2d9e4f1a0
Revises: 64e4ec00d3df
Create Date: 2026-12-04 02:50:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b7c2d9e4f1a0'
down_revision = '64e4ec00d3df'
branch_labels = None
depends_on = None

WAITING = sa.text("status IN ('queued', 'scheduled')")


def upgrade():
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index(
            'ix_jobs_waiting',
            ['type', 'created_at'],
            unique=False,
            postgresql_where=WAITING,
            sqlite_where=WAITING,
        )


def downgrade():
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_waiting')
