"""ops accounts: operator users, server-side sessions, login throttle counters

Revision ID: c4d8e2a6f913
Revises: b7c2d9e4f1a0
Create Date: 2026-12-06 08:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c4d8e2a6f913'
down_revision = 'b7c2d9e4f1a0'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('ops_users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('role', sa.Enum('admin', 'viewer', name='opsrole', native_enum=False, length=32), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('password_changed_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ops_users')),
    sa.UniqueConstraint('name', name=op.f('uq_ops_users_name'))
    )
    op.create_table('ops_sessions',
    sa.Column('id_hash', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('username', sa.String(length=100), nullable=False),
    sa.Column('credential', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('last_seen', sa.DateTime(), nullable=False),
    sa.Column('ip', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['ops_users.id'], name=op.f('fk_ops_sessions_user_id_ops_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id_hash', name=op.f('pk_ops_sessions'))
    )
    with op.batch_alter_table('ops_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ops_sessions_user_id'), ['user_id'], unique=False)

    op.create_table('login_counters',
    sa.Column('key', sa.String(length=120), nullable=False),
    sa.Column('window_start', sa.DateTime(), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_login_counters'))
    )


def downgrade():
    op.drop_table('login_counters')
    with op.batch_alter_table('ops_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ops_sessions_user_id'))

    op.drop_table('ops_sessions')
    op.drop_table('ops_users')
