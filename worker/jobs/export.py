"""The `tunery.export_model` task: make a model's merged export once, on first request.

Files first, rows after, each row its own short transaction: the merge runs into a staging directory
beside the export, is checked (worker/training/merge.py), and is renamed into place whole (on S3:
uploaded, then a `.ready` object written), so the API (api/models/downloads.py, which reads the state
from files or objects alone) never offers half an export. An
export that fails its check leaves a failure marker with the reason and an error event on the job.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

from api.db import session_scope
from api.fine_tuning import artifacts, repository
from api.models.downloads import clear_request, export_ready, mark_failed, mark_ready
from api.storage import store_of
from api.storage.directories import put_directory
from worker.runtime import Runtime

log = logging.getLogger(__name__)


def export_model(
    rt: Runtime, job_id: str, step: int | None, on_stage: Callable[[str], None] | None = None
) -> Path | None:
    """The merged export of the job's model (`step` None) or of its checkpoint at `step`; None when
    there is nothing to export (the model was deleted) or it was not offered (its check failed)."""
    target = artifacts.merged_dir(rt.settings, job_id, step)
    source = (
        artifacts.adapter_dir(rt.settings, job_id)
        if step is None
        else artifacts.checkpoint_dir(rt.settings, job_id, step)
    )
    settings = rt.settings
    base_model = _exportable(rt, job_id, step)
    if base_model is None or export_ready(settings, target):
        clear_request(settings, target)
        return None if base_model is None else target
    if not artifacts.fetch(settings, source):  # on S3: downloaded from the bucket
        clear_request(settings, target)
        return None
    base = rt.model_store.get(base_model)
    if base is None:
        _not_offered(rt, job_id, target, f"its base model {base_model} is no longer in the store")
        return None
    name = "the fine-tuned model" if step is None else f"the checkpoint at step {step}"
    _event(rt, job_id, f"Merging the adapter into the base: {name}")
    staging = target.with_name(f".staging-{target.name}-{uuid.uuid4().hex[:8]}")
    from worker.training.merge import MergeCheckFailed, merge_adapter  # torch: only when merging

    try:
        report = merge_adapter(source, base.path, staging, on_stage)
    except MergeCheckFailed as exc:
        shutil.rmtree(staging, ignore_errors=True)
        _not_offered(rt, job_id, target, str(exc))
        return None
    except Exception:
        # Not the export's fault (out of memory, a full disk): the next request asks again.
        log.exception("merging %s of %s failed", name, job_id)
        shutil.rmtree(staging, ignore_errors=True)
        clear_request(settings, target)
        _event(rt, job_id, f"Merging the adapter into the base failed: {name}; ask again", level="error")
        return None
    try:
        staging.rename(target)
    except OSError:  # another merge of the same model was first: keep that one
        shutil.rmtree(staging, ignore_errors=True)
    store = store_of(settings)
    if store.remote:  # its objects first, then the marker that offers them
        put_directory(store, artifacts.key_of(settings, target), target)
        mark_ready(settings, target)
    clear_request(settings, target)
    if _exportable(rt, job_id, step) is None:  # deleted while it was merging: its files go too
        artifacts.remove(settings, target)
        if store.remote:
            store.delete(artifacts.key_of(settings, target) + ".ready")
        return None
    _event(
        rt,
        job_id,
        f"Merged export ready: {name} (max abs logit difference {report.max_abs_diff:.2g}, "
        f"tolerance {report.tolerance:g}, {report.dtype})",
    )
    return target


def _exportable(rt: Runtime, job_id: str, step: int | None) -> str | None:
    """The job's base model while the model (or checkpoint) still stands; None once deleted."""
    with session_scope(rt.sessions, writes=False) as session:
        job = repository.get(session, None, job_id)
        if job is None:
            return None
        if step is None and (job.fine_tuned_model is None or job.model_deleted_at is not None):
            return None
        return job.model


def _not_offered(rt: Runtime, job_id: str, target: Path, reason: str) -> None:
    mark_failed(rt.settings, target, reason)
    _event(rt, job_id, f"Merged export not offered: {reason}", level="error")


def _event(rt: Runtime, job_id: str, message: str, level: str = "info") -> None:
    with session_scope(rt.sessions) as session:
        job = repository.get_for_update(session, job_id)
        if job is not None:
            repository.add_event(session, job, message, level=level)
