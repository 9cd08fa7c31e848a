"""workers: each worker process registers what it has and heartbeats

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 01:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


# revision identifiers, used by Alembic.
revision: str = '0004'
down_revision: Union[str, Sequence[str], None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        'workers',
        sa.Column('pk', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
        sa.Column('id', sa.String(length=128), nullable=False),
        sa.Column('hostname', sa.String(length=255), nullable=False),
        sa.Column('pool', sa.String(length=64), nullable=False),
        sa.Column('queues', JSON, nullable=False),
        sa.Column('gpu_count', sa.BigInteger(), nullable=False),
        sa.Column('gpu_memory_bytes', sa.BigInteger(), nullable=True),
        sa.Column('gpu_names', JSON, nullable=False),
        sa.Column('started_at', sa.BigInteger(), nullable=False),
        sa.Column('last_heartbeat_at', sa.BigInteger(), nullable=False),
        sa.Column('stopped_at', sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint('pk', name=op.f('pk_workers')),
        sa.UniqueConstraint('id', name=op.f('uq_workers_id')),
    )
    with op.batch_alter_table('workers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_workers_pool'), ['pool'], unique=False)
        batch_op.create_index(batch_op.f('ix_workers_last_heartbeat_at'), ['last_heartbeat_at'], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('workers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_workers_last_heartbeat_at'))
        batch_op.drop_index(batch_op.f('ix_workers_pool'))
    op.drop_table('workers')
