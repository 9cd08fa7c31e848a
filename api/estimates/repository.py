"""The queries of the estimate: earlier jobs whose speed predicts a new one's."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.fine_tuning.status import SUCCEEDED
from api.tables import FineTuningJob

# Enough recent runs to smooth one slow one; few enough that the query stays small.
RECENT_JOBS = 20


def recent_runs(session: Session, model: str, pool: str | None) -> list[FineTuningJob]:
    """The newest succeeded jobs of `model` on `pool` (None: the default pool) with a measured length."""
    query = select(FineTuningJob).where(
        FineTuningJob.status == SUCCEEDED,
        FineTuningJob.model == model,
        FineTuningJob.trained_tokens.is_not(None),
        FineTuningJob.started_at.is_not(None),
        FineTuningJob.finished_at.is_not(None),
        FineTuningJob.pool.is_(None) if pool is None else FineTuningJob.pool == pool,
    )
    return list(session.scalars(query.order_by(FineTuningJob.finished_at.desc()).limit(RECENT_JOBS)))
