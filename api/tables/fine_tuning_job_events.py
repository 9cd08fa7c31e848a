from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from api.tables.base import Base, JSONType, PrimaryKey


class FineTuningJobEvent(Base):
    """What happened to a job: state changes, trainer messages and per-step metrics."""

    __tablename__ = "fine_tuning_job_events"

    pk: Mapped[int] = mapped_column(PrimaryKey, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    job_pk: Mapped[int] = mapped_column(ForeignKey("fine_tuning_jobs.pk", ondelete="CASCADE"), index=True)
    created_at: Mapped[int]
    level: Mapped[str] = mapped_column(String(8))
    type: Mapped[str] = mapped_column(String(16))
    message: Mapped[str]
    data: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
