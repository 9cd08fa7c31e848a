from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from api.tables.base import Base, PrimaryKey
from api.tables.projects import Project


class CheckpointPermission(Base):
    """Another project may use a checkpoint model: it lists, retrieves and downloads it."""

    __tablename__ = "checkpoint_permissions"
    __table_args__ = (UniqueConstraint("checkpoint_pk", "project_pk"),)

    pk: Mapped[int] = mapped_column(PrimaryKey, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    checkpoint_pk: Mapped[int] = mapped_column(
        ForeignKey("fine_tuning_checkpoints.pk", ondelete="CASCADE"), index=True
    )
    project_pk: Mapped[int] = mapped_column(ForeignKey("projects.pk", ondelete="CASCADE"), index=True)
    created_at: Mapped[int]

    project: Mapped[Project] = relationship(lazy="joined", innerjoin=True)
