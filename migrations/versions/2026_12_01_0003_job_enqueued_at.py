"""fine_tuning_jobs.enqueued_at: when the job's newest message was sent, for the reconciler

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 22:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0003'
down_revision: Union[str, Sequence[str], None] = '0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    # Left empty on existing rows: the reconciler takes a job without it for one whose message is
    # old, and rings once more for a queued or validating one, which is harmless.
    with op.batch_alter_table('fine_tuning_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('enqueued_at', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('fine_tuning_jobs', schema=None) as batch_op:
        batch_op.drop_column('enqueued_at')
