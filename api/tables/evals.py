from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from api.tables.base import Base, JSONType, PrimaryKey


class Eval(Base):
    """An eval: what its items look like (data_source_config) and how each answer is graded."""

    __tablename__ = "evals"

    pk: Mapped[int] = mapped_column(PrimaryKey, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    project_pk: Mapped[int] = mapped_column(ForeignKey("projects.pk", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(256))
    # As asked for: {"type": "custom", "item_schema", "include_sample_schema"} or Tunery's file config.
    data_source_config: Mapped[dict[str, Any]] = mapped_column(JSONType)
    # Grader objects (graders/types.py), as graders.grader_json writes them.
    testing_criteria: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    eval_metadata: Mapped[dict[str, str] | None] = mapped_column("metadata", JSONType)
    created_at: Mapped[int]
    updated_at: Mapped[int]
