from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from api.tables.base import Base, JSONType, PrimaryKey


class EvalOutputItem(Base):
    """One item of a run: its sample and what each testing criterion made of it."""

    __tablename__ = "eval_output_items"
    # An item is recorded once per run, however many workers a run passed through.
    __table_args__ = (UniqueConstraint("run_pk", "datasource_item_id"),)

    pk: Mapped[int] = mapped_column(PrimaryKey, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    run_pk: Mapped[int] = mapped_column(ForeignKey("eval_runs.pk", ondelete="CASCADE"), index=True)
    datasource_item_id: Mapped[int]
    datasource_item: Mapped[dict[str, Any]] = mapped_column(JSONType)
    sample: Mapped[dict[str, Any]] = mapped_column(JSONType)
    results: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[int]
