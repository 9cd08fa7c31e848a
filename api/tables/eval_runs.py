from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from api.tables.base import Base, JSONType, PrimaryKey


class EvalRun(Base):
    """One run of an eval over a data source. This row, not the queue message, is the truth about it."""

    __tablename__ = "eval_runs"

    pk: Mapped[int] = mapped_column(PrimaryKey, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    eval_pk: Mapped[int] = mapped_column(ForeignKey("evals.pk", ondelete="CASCADE"), index=True)
    project_pk: Mapped[int] = mapped_column(ForeignKey("projects.pk", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(256))
    # The model that generates the samples of a completions run; None for a jsonl run.
    model: Mapped[str | None] = mapped_column(String(512))
    data_source: Mapped[dict[str, Any]] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(String(32), index=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    # {"total", "passed", "failed", "errored"}, kept current as batches are recorded.
    result_counts: Mapped[dict[str, int]] = mapped_column(JSONType)
    # [{"testing_criteria", "passed", "failed"}], one per criterion, in the eval's order.
    per_testing_criteria_results: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    per_model_usage: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    run_metadata: Mapped[dict[str, str] | None] = mapped_column("metadata", JSONType)
    # The fine-tuning job whose success started this run (Tunery's extension), if one did.
    fine_tuning_job_id: Mapped[str | None] = mapped_column(String(64), index=True)
    created_at: Mapped[int]
    started_at: Mapped[int | None]
    finished_at: Mapped[int | None]
    # As on jobs (worker/leases.py): the worker running it renews the lease; the reconciler requeues a
    # run whose lease expired, and the next worker grades only the items not yet recorded.
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[int | None]
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    enqueued_at: Mapped[int | None]
