from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from api.tables.base import Base, JSONType, PrimaryKey
from api.tables.fine_tuning_jobs import FineTuningJob


class FineTuningCheckpoint(Base):
    """A model saved at the end of an epoch, usable by its own name like a fine-tuned model."""

    __tablename__ = "fine_tuning_checkpoints"

    pk: Mapped[int] = mapped_column(PrimaryKey, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    job_pk: Mapped[int] = mapped_column(ForeignKey("fine_tuning_jobs.pk", ondelete="CASCADE"), index=True)
    # The job's project, kept here so that model listings need no join to scope by tenant.
    project_pk: Mapped[int] = mapped_column(ForeignKey("projects.pk", ondelete="CASCADE"), index=True)
    step_number: Mapped[int]
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONType)
    fine_tuned_model_checkpoint: Mapped[str] = mapped_column(String(600), unique=True)
    created_at: Mapped[int]

    job: Mapped[FineTuningJob] = relationship(lazy="joined", innerjoin=True)
