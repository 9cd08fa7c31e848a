"""Downloading a fine-tuned or checkpoint model: its adapter as stored, or merged into its base.

The merged export is torch work, so the API only asks for it: the first request after the commit
leaves a request marker and sends `tunery.export_model` to the worker (worker/jobs/export.py), which
merges into a staging directory, checks the logits, and renames the export into place. Until then the
route answers 202. Which state an export is in is read from files alone:

  exports/model (or step-N)          the export, offered once it is there (renamed into place whole)
  exports/model.failed               why the last merge was not offered (its check failed)
  exports/model.requested            a merge was asked for at its mtime (asked again once stale)

With TUNERY_STORAGE_URL=s3://... the same names are objects, and `exports/model.ready` says that the
export's objects are all up (an upload is not one rename).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sqlalchemy.orm import Session

from api import queue
from api.auth.service import Caller
from api.checkpoints import service as checkpoints
from api.config import Settings
from api.db import after_commit
from api.errors import InvalidRequest, TuneryError, model_not_found
from api.fine_tuning import artifacts
from api.fine_tuning import service as jobs
from api.models.serving import ADAPTER_CONFIG, read_adapter_config
from api.models.store import ModelStore
from api.storage import store_of

Format = Literal["adapter", "merged"]
# A merge asked for this long ago and not finished is asked for again (its message may be lost; a
# second merge of the same model is harmless: the first rename wins, the other is discarded).
REQUEST_STALE_SECONDS = 3600
RETRY_AFTER_SECONDS = 10
MERGEABLE_PEFT_TYPES = frozenset({"LORA", "IA3"})
MERGED_ROOT = "model"


class ExportFailed(TuneryError):
    status_code = 409
    code = "merged_export_failed"


@dataclass(frozen=True)
class ModelArtifact:
    model: str
    job_id: str
    step: int | None
    """The checkpoint's step; None for the job's fine-tuned model."""
    directory: Path

    @property
    def stem(self) -> str:
        return self.job_id if self.step is None else f"{self.job_id}-step-{self.step}"

    def is_adapter(self, settings: Settings) -> bool:
        return (artifacts.metadata_dir(settings, self.directory) / ADAPTER_CONFIG).exists()


def find_artifact(
    session: Session, settings: Settings, store: ModelStore, caller: Caller, model_id: str
) -> ModelArtifact:
    """The stored artifact of a model the caller may use: its job's, or a checkpoint's (own or shared)."""
    if store.get(model_id) is not None:
        raise InvalidRequest(
            f"The model '{model_id}' is a base model: only fine-tuned and checkpoint models are downloaded.",
            param="model",
            code="model_not_downloadable",
        )
    job = jobs.job_of_model(session, caller, model_id)  # None once the model is deleted
    if job is not None:
        artifact = ModelArtifact(model_id, job.id, None, artifacts.adapter_dir(settings, job.id))
    else:
        row = checkpoints.find_usable_checkpoint(session, caller, model_id)
        if row is None:
            raise model_not_found(model_id)
        directory = artifacts.checkpoint_dir(settings, row.job.id, row.step_number)
        artifact = ModelArtifact(model_id, row.job.id, row.step_number, directory)
    if not artifacts.exists(settings, artifact.directory):
        raise model_not_found(model_id)  # its files are gone (being deleted, or never stored)
    return artifact


def merged_export(session: Session, settings: Settings, artifact: ModelArtifact) -> Path | None:
    """The merged export's directory if it is ready; None while it is being made (asked for after the
    request's commit). Raises ExportFailed when the last merge failed its check. The caller's read
    transaction must be over (api.db.end_reads): on S3 this asks the bucket."""
    if not artifact.is_adapter(settings):
        return artifact.directory  # full, freeze, bitfit: the artifact is a whole model already
    config = read_adapter_config(artifacts.metadata_dir(settings, artifact.directory)) or {}
    if config.get("peft_type") not in MERGEABLE_PEFT_TYPES:
        raise InvalidRequest(
            f"A {config.get('peft_type')} adapter has no weights to merge into its base; download "
            "format=adapter and load it with PEFT.",
            param="format",
            code="model_not_mergeable",
        )
    ready = artifacts.merged_dir(settings, artifact.job_id, artifact.step)
    if export_ready(settings, ready):
        return ready
    failed = failure_reason(settings, ready)
    if failed is not None:
        raise ExportFailed(f"The merged export of {artifact.model} was not offered: {failed}")
    after_commit(session, lambda: request_merge(settings, artifact))
    return None


def preparing_body(artifact: ModelArtifact) -> dict[str, object]:
    return {
        "object": "model.export",
        "model": artifact.model,
        "format": "merged",
        "status": "preparing",
        "message": f"The merged export is being prepared; ask again in a while (progress: the events "
        f"of fine-tuning job {artifact.job_id}).",
    }


def request_merge(settings: Settings, artifact: ModelArtifact) -> None:
    """Ask the worker for the merge unless it was asked for recently."""
    export_dir = artifacts.merged_dir(settings, artifact.job_id, artifact.step)
    store = store_of(settings)
    if store.remote:
        asked = store.stat(_marker_key(settings, export_dir, "requested"))
        if asked is not None and time.time() - asked.modified < REQUEST_STALE_SECONDS:
            return
        store.put_bytes(_marker_key(settings, export_dir, "requested"), b"")
        queue.enqueue(settings, queue.EXPORT_MODEL, artifact.job_id, artifact.step)
        return
    marker = _marker(export_dir, "requested")
    marker.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        try:
            if time.time() - marker.stat().st_mtime < REQUEST_STALE_SECONDS:
                return
            os.utime(marker)
        except FileNotFoundError:
            return  # the worker just finished it
    queue.enqueue(settings, queue.EXPORT_MODEL, artifact.job_id, artifact.step)


# The state of an export. On disk: the directory renamed into place, and marker files beside it. On
# S3: the export's objects, then a `.ready` object once all are up; the markers are objects too.


def export_ready(settings: Settings, export_dir: Path) -> bool:
    store = store_of(settings)
    if not store.remote:
        return export_dir.is_dir()
    return store.stat(_marker_key(settings, export_dir, "ready")) is not None


def mark_ready(settings: Settings, export_dir: Path) -> None:
    """On S3: the export's objects are all stored (the worker uploaded them first)."""
    store_of(settings).put_bytes(_marker_key(settings, export_dir, "ready"), b"")


def failure_reason(settings: Settings, export_dir: Path) -> str | None:
    store = store_of(settings)
    if store.remote:
        recorded = store.get_bytes(_marker_key(settings, export_dir, "failed"))
    else:
        try:
            recorded = _marker(export_dir, "failed").read_bytes()
        except OSError:
            return None
    if recorded is None:
        return None
    try:
        return str(json.loads(recorded).get("reason"))
    except ValueError:
        return "its check failed."


def mark_failed(settings: Settings, export_dir: Path, reason: str) -> None:
    record = (json.dumps({"reason": reason}) + "\n").encode()
    store = store_of(settings)
    if store.remote:
        store.put_bytes(_marker_key(settings, export_dir, "failed"), record)
    else:
        export_dir.parent.mkdir(parents=True, exist_ok=True)
        _marker(export_dir, "failed").write_bytes(record)
    clear_request(settings, export_dir)


def clear_request(settings: Settings, export_dir: Path) -> None:
    store = store_of(settings)
    if store.remote:
        store.delete(_marker_key(settings, export_dir, "requested"))
    else:
        _marker(export_dir, "requested").unlink(missing_ok=True)


def _marker(export_dir: Path, kind: str) -> Path:
    return export_dir.with_name(f"{export_dir.name}.{kind}")


def _marker_key(settings: Settings, export_dir: Path, kind: str) -> str:
    return f"{artifacts.key_of(settings, export_dir)}.{kind}"
