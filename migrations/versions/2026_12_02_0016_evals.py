"""evals: evals, their runs and each run's output items; fine_tuning_jobs.eval_on_success

Revision ID: 0016_evals
Revises: 0014_job_start_from
Create Date: 2026-12-02 13:40:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


# revision identifiers, used by Alembic.
revision: str = '0016_evals'
down_revision: Union[str, Sequence[str], None] = '0014_job_start_from'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
PK = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        'evals',
        sa.Column('pk', PK, autoincrement=True, nullable=False),
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('project_pk', PK, nullable=False),
        sa.Column('name', sa.String(length=256), nullable=False),
        sa.Column('data_source_config', JSON, nullable=False),
        sa.Column('testing_criteria', JSON, nullable=False),
        sa.Column('metadata', JSON, nullable=True),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.Column('updated_at', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['project_pk'], ['projects.pk'], name=op.f('fk_evals_project_pk_projects'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('pk', name=op.f('pk_evals')),
        sa.UniqueConstraint('id', name=op.f('uq_evals_id')),
    )
    with op.batch_alter_table('evals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_evals_project_pk'), ['project_pk'], unique=False)

    op.create_table(
        'eval_runs',
        sa.Column('pk', PK, autoincrement=True, nullable=False),
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('eval_pk', PK, nullable=False),
        sa.Column('project_pk', PK, nullable=False),
        sa.Column('name', sa.String(length=256), nullable=False),
        sa.Column('model', sa.String(length=512), nullable=True),
        sa.Column('data_source', JSON, nullable=False),
        sa.Column('status', sa.String(length=32), nullable=False),
        sa.Column('error', JSON, nullable=True),
        sa.Column('result_counts', JSON, nullable=False),
        sa.Column('per_testing_criteria_results', JSON, nullable=False),
        sa.Column('per_model_usage', JSON, nullable=False),
        sa.Column('metadata', JSON, nullable=True),
        sa.Column('fine_tuning_job_id', sa.String(length=64), nullable=True),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.Column('started_at', sa.BigInteger(), nullable=True),
        sa.Column('finished_at', sa.BigInteger(), nullable=True),
        sa.Column('lease_owner', sa.String(length=128), nullable=True),
        sa.Column('lease_expires_at', sa.BigInteger(), nullable=True),
        sa.Column('attempts', sa.BigInteger(), server_default='0', nullable=False),
        sa.Column('enqueued_at', sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(['eval_pk'], ['evals.pk'], name=op.f('fk_eval_runs_eval_pk_evals'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['project_pk'], ['projects.pk'], name=op.f('fk_eval_runs_project_pk_projects'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('pk', name=op.f('pk_eval_runs')),
        sa.UniqueConstraint('id', name=op.f('uq_eval_runs_id')),
    )
    with op.batch_alter_table('eval_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_eval_runs_eval_pk'), ['eval_pk'], unique=False)
        batch_op.create_index(batch_op.f('ix_eval_runs_project_pk'), ['project_pk'], unique=False)
        batch_op.create_index(batch_op.f('ix_eval_runs_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_eval_runs_fine_tuning_job_id'), ['fine_tuning_job_id'], unique=False)

    op.create_table(
        'eval_output_items',
        sa.Column('pk', PK, autoincrement=True, nullable=False),
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('run_pk', PK, nullable=False),
        sa.Column('datasource_item_id', sa.BigInteger(), nullable=False),
        sa.Column('datasource_item', JSON, nullable=False),
        sa.Column('sample', JSON, nullable=False),
        sa.Column('results', JSON, nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['run_pk'], ['eval_runs.pk'], name=op.f('fk_eval_output_items_run_pk_eval_runs'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('pk', name=op.f('pk_eval_output_items')),
        sa.UniqueConstraint('id', name=op.f('uq_eval_output_items_id')),
        sa.UniqueConstraint('run_pk', 'datasource_item_id', name=op.f('uq_eval_output_items_run_pk')),
    )
    with op.batch_alter_table('eval_output_items', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_eval_output_items_run_pk'), ['run_pk'], unique=False)
        batch_op.create_index(batch_op.f('ix_eval_output_items_status'), ['status'], unique=False)

    with op.batch_alter_table('fine_tuning_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('eval_on_success', JSON, nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('fine_tuning_jobs', schema=None) as batch_op:
        batch_op.drop_column('eval_on_success')
    op.drop_table('eval_output_items')
    op.drop_table('eval_runs')
    op.drop_table('evals')
