"""Where a job's artifacts live in the data directory, shared by the API (serving) and the worker."""

import shutil
from pathlib import Path

from api.config import Settings


def job_artifacts_dir(settings: Settings, job_id: str) -> Path:
    return settings.artifacts_path / job_id


def adapter_dir(settings: Settings, job_id: str) -> Path:
    return job_artifacts_dir(settings, job_id) / "adapter"


def adapter_archive(settings: Settings, job_id: str) -> Path:
    return job_artifacts_dir(settings, job_id) / "adapter.tar.gz"


def remove_adapter(settings: Settings, job_id: str) -> None:
    shutil.rmtree(adapter_dir(settings, job_id), ignore_errors=True)
    adapter_archive(settings, job_id).unlink(missing_ok=True)


def checkpoint_dir(settings: Settings, job_id: str, step: int) -> Path:
    return job_artifacts_dir(settings, job_id) / "checkpoints" / f"step-{step}"


def checkpoint_archive(settings: Settings, job_id: str, step: int) -> Path:
    return job_artifacts_dir(settings, job_id) / "checkpoints" / f"step-{step}.tar.gz"
