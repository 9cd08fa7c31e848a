from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from api.tables.base import Base, JSONType, PrimaryKey
from api.tables.projects import Project


class FineTuningJob(Base):
    """One fine-tuning job. This row, not the queue message, is the truth about the job."""

    __tablename__ = "fine_tuning_jobs"
    __table_args__ = (UniqueConstraint("project_pk", "idempotency_key"),)

    pk: Mapped[int] = mapped_column(PrimaryKey, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    project_pk: Mapped[int] = mapped_column(ForeignKey("projects.pk", ondelete="CASCADE"), index=True)
    model: Mapped[str] = mapped_column(String(256))
    training_file: Mapped[str] = mapped_column(String(64))
    validation_file: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32), index=True)
    # As asked for until validation resolves "auto"; the values used from then on.
    hyperparameters: Mapped[dict[str, Any]] = mapped_column(JSONType)
    method: Mapped[dict[str, Any]] = mapped_column(JSONType)
    recipe: Mapped[dict[str, Any]] = mapped_column(JSONType)
    seed: Mapped[int]
    suffix: Mapped[str | None] = mapped_column(String(64))
    job_metadata: Mapped[dict[str, str] | None] = mapped_column("metadata", JSONType)
    integrations: Mapped[list[Any] | None] = mapped_column(JSONType)
    n_training_examples: Mapped[int | None]
    fine_tuned_model: Mapped[str | None] = mapped_column(String(512), unique=True)
    trained_tokens: Mapped[int | None]
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    result_files: Mapped[list[str]] = mapped_column(JSONType)
    created_at: Mapped[int]
    started_at: Mapped[int | None]
    finished_at: Mapped[int | None]
    estimated_finish: Mapped[int | None]
    # Set when the fine-tuned model is deleted: its artifacts are gone, the job keeps its record.
    model_deleted_at: Mapped[int | None]
    # The trainer's newest resumable state (relative to the job's work directory) and its step:
    # where a paused or interrupted run picks up.
    resume_from: Mapped[str | None] = mapped_column(String(512))
    resume_step: Mapped[int | None]
    # The worker training the job holds a lease it renews while it runs; an expired lease means
    # the worker died and the job may be given to another (see worker/leases.py).
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[int | None]
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    # When the newest message for the job was sent (or, delayed, falls due). A queued or validating
    # job whose message is much older than that and that no worker leases was lost by the broker:
    # the reconciler sends another (worker/reconciler.py), with no need to read the broker's storage.
    enqueued_at: Mapped[int | None]
    # The GPU pool the job was admitted to at create (its training queue); None: the default pool.
    pool: Mapped[str | None] = mapped_column(String(64))
    # Trained on from a fine-tuned or checkpoint model (api/fine_tuning/start_from.py): its name, job,
    # step and artifact format. `model` stays the original base.
    start_from: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    # Tunery's extension `eval`: {"eval_id", "data_source"}; when the job succeeds, a run of that eval
    # starts on the fine-tuned model and one on its base (api/evals/fine_tuning.py).
    eval_on_success: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    # A client's Idempotency-Key on create: a retried POST returns this job instead of a new one.
    idempotency_key: Mapped[str | None] = mapped_column(String(255))

    project: Mapped[Project] = relationship(lazy="joined", innerjoin=True)
