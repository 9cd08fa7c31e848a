"""Where a job's artifacts live in the data directory, shared by the API (serving) and the worker.

An artifact is stored as the directory the trainer wrote (moved into place by the worker), never as an
archive: a download builds a tar of it on the fly (api/fine_tuning/tar_download.py).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from api.config import Settings


def job_artifacts_dir(settings: Settings, job_id: str) -> Path:
    return settings.artifacts_path / job_id


def adapter_dir(settings: Settings, job_id: str) -> Path:
    return job_artifacts_dir(settings, job_id) / "adapter"


def remove_adapter(settings: Settings, job_id: str) -> None:
    """The fine-tuned model's files: its artifact and its merged export (checkpoints stay)."""
    shutil.rmtree(adapter_dir(settings, job_id), ignore_errors=True)
    shutil.rmtree(merged_dir(settings, job_id, None), ignore_errors=True)


def checkpoint_dir(settings: Settings, job_id: str, step: int) -> Path:
    return job_artifacts_dir(settings, job_id) / "checkpoints" / f"step-{step}"


def exports_dir(settings: Settings, job_id: str) -> Path:
    """Merged exports, their staging directories and their request/failure markers."""
    return job_artifacts_dir(settings, job_id) / "merged"


def merged_dir(settings: Settings, job_id: str, step: int | None) -> Path:
    """The merged export of the job's fine-tuned model (`step` None) or of its checkpoint at `step`."""
    return exports_dir(settings, job_id) / ("model" if step is None else f"step-{step}")
