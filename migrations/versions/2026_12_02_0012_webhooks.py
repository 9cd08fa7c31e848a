"""webhooks: endpoints per project, deliveries of job events, and each attempt

Revision ID: 0012_webhooks
Revises: 0011_job_pools
Create Date: 2026-12-02 01:10:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


# revision identifiers, used by Alembic.
revision: str = '0012_webhooks'
down_revision: Union[str, Sequence[str], None] = '0011_job_pools'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
PK = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        'webhook_endpoints',
        sa.Column('pk', PK, autoincrement=True, nullable=False),
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('project_pk', PK, nullable=False),
        sa.Column('url', sa.String(length=2048), nullable=False),
        sa.Column('events', JSON, nullable=False),
        sa.Column('secret', sa.String(length=128), nullable=False),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['project_pk'], ['projects.pk'], name=op.f('fk_webhook_endpoints_project_pk_projects'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('pk', name=op.f('pk_webhook_endpoints')),
        sa.UniqueConstraint('id', name=op.f('uq_webhook_endpoints_id')),
    )
    with op.batch_alter_table('webhook_endpoints', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_webhook_endpoints_project_pk'), ['project_pk'], unique=False)

    op.create_table(
        'webhook_deliveries',
        sa.Column('pk', PK, autoincrement=True, nullable=False),
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('event_id', sa.String(length=64), nullable=False),
        sa.Column('event_type', sa.String(length=64), nullable=False),
        sa.Column('endpoint_pk', PK, nullable=False),
        sa.Column('job_pk', PK, nullable=True),
        sa.Column('payload', JSON, nullable=False),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.Column('attempts', sa.BigInteger(), nullable=False),
        sa.Column('next_attempt_at', sa.BigInteger(), nullable=True),
        sa.Column('claimed_until', sa.BigInteger(), nullable=True),
        sa.Column('delivered_at', sa.BigInteger(), nullable=True),
        sa.Column('given_up_at', sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(['endpoint_pk'], ['webhook_endpoints.pk'], name=op.f('fk_webhook_deliveries_endpoint_pk_webhook_endpoints'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['job_pk'], ['fine_tuning_jobs.pk'], name=op.f('fk_webhook_deliveries_job_pk_fine_tuning_jobs'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('pk', name=op.f('pk_webhook_deliveries')),
        sa.UniqueConstraint('id', name=op.f('uq_webhook_deliveries_id')),
        sa.UniqueConstraint('event_id', 'endpoint_pk', name=op.f('uq_webhook_deliveries_event_id')),
    )
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_webhook_deliveries_event_id'), ['event_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_webhook_deliveries_endpoint_pk'), ['endpoint_pk'], unique=False)
        batch_op.create_index(batch_op.f('ix_webhook_deliveries_job_pk'), ['job_pk'], unique=False)
        batch_op.create_index(batch_op.f('ix_webhook_deliveries_next_attempt_at'), ['next_attempt_at'], unique=False)

    op.create_table(
        'webhook_attempts',
        sa.Column('pk', PK, autoincrement=True, nullable=False),
        sa.Column('delivery_pk', PK, nullable=False),
        sa.Column('started_at', sa.BigInteger(), nullable=False),
        sa.Column('duration_ms', sa.BigInteger(), nullable=False),
        sa.Column('status_code', sa.BigInteger(), nullable=True),
        sa.Column('error', sa.String(length=1024), nullable=True),
        sa.ForeignKeyConstraint(['delivery_pk'], ['webhook_deliveries.pk'], name=op.f('fk_webhook_attempts_delivery_pk_webhook_deliveries'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('pk', name=op.f('pk_webhook_attempts')),
    )
    with op.batch_alter_table('webhook_attempts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_webhook_attempts_delivery_pk'), ['delivery_pk'], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table('webhook_attempts')
    op.drop_table('webhook_deliveries')
    op.drop_table('webhook_endpoints')
