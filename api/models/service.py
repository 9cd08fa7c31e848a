"""Models a project can use: the shared base models, the fine-tuned models of its jobs, their
checkpoints, and checkpoints other projects shared with it."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session

from api import clock
from api.auth.service import Caller
from api.checkpoints import service as checkpoints
from api.config import Settings
from api.db import after_commit, end_reads
from api.errors import InvalidRequest, model_not_found
from api.fine_tuning import artifacts
from api.fine_tuning import service as jobs
from api.inference.unloading import unload_everywhere
from api.models.schemas import ModelObject
from api.models.serving import serving_of
from api.models.store import ModelStore
from api.tables import FineTuningCheckpoint, FineTuningJob

BASE_OWNER = "tunery"


def list_models(session: Session, store: ModelStore, caller: Caller) -> list[ModelObject]:
    base = [ModelObject(id=m.id, created=m.created, owned_by=BASE_OWNER) for m in store.list()]
    tuned = [_tuned(job) for job in jobs.jobs_with_models(session, caller)]
    saved = [_checkpoint(row) for row in checkpoints.usable_checkpoints(session, caller)]
    return base + tuned + saved


def get_model(
    session: Session, settings: Settings, store: ModelStore, caller: Caller, model_id: str
) -> ModelObject:
    """The model; for a fine-tuned or checkpoint model with `serving` (reads two small JSON files)."""
    entry = store.get(model_id)
    if entry is not None:
        return ModelObject(id=entry.id, created=entry.created, owned_by=BASE_OWNER)
    job = jobs.job_of_model(session, caller, model_id)
    if job is not None:
        end_reads(session)  # a GET: its reads are done, and the serving verdict may ask the bucket
        return _with_serving(_tuned(job), settings, store, job.model, artifacts.adapter_dir(settings, job.id))
    checkpoint = checkpoints.find_usable_checkpoint(session, caller, model_id)
    if checkpoint is not None:
        directory = artifacts.checkpoint_dir(settings, checkpoint.job.id, checkpoint.step_number)
        end_reads(session)
        return _with_serving(_checkpoint(checkpoint), settings, store, checkpoint.job.model, directory)
    raise model_not_found(model_id)


def _with_serving(
    model: ModelObject, settings: Settings, store: ModelStore, base_model: str, directory: Path
) -> ModelObject:
    base = store.get(base_model)
    files = artifacts.metadata_dir(settings, directory)  # on S3: its JSON files, fetched once
    verdict = serving_of(files, base.path if base else None, settings.vllm_max_lora_rank)
    return model.model_copy(update={"serving": verdict})


def delete_model(
    session: Session, settings: Settings, store: ModelStore, caller: Caller, model_id: str
) -> FineTuningJob:
    """Mark a fine-tuned model deleted; its job keeps the record (and the name). Once that is committed
    the inference backends unload it and its files go: a failure then leaves a loaded adapter or
    garbage files, never a model without them."""
    job = jobs.job_of_model(session, caller, model_id)
    if job is None:
        if store.get(model_id) is not None or checkpoints.find_usable_checkpoint(session, caller, model_id):
            raise InvalidRequest(
                f"The model '{model_id}' is not a fine-tuned model; only fine-tuned models can be deleted.",
                param="model",
                code="model_not_deletable",
            )
        raise model_not_found(model_id)
    job.model_deleted_at = clock.now()
    jobs.record_event(session, job, f"Fine-tuned model deleted: {model_id}")
    job_id, base_model = job.id, job.model
    artifact_dir = artifacts.served_as(settings, artifacts.adapter_dir(settings, job_id))
    after_commit(session, lambda: unload_everywhere(settings, model_id, base_model, artifact_dir))
    after_commit(session, lambda: artifacts.remove_adapter(settings, job_id))
    return job


def _tuned(job: FineTuningJob) -> ModelObject:
    assert job.fine_tuned_model is not None
    return ModelObject(
        id=job.fine_tuned_model, created=job.finished_at or job.created_at, owned_by=job.project.id
    )


def _checkpoint(row: FineTuningCheckpoint) -> ModelObject:
    return ModelObject(
        id=row.fine_tuned_model_checkpoint, created=row.created_at, owned_by=row.job.project.id
    )
