"""Where a job's artifacts live in the data directory, shared by the API (serving) and the worker."""

from pathlib import Path

from api.config import Settings


def job_artifacts_dir(settings: Settings, job_id: str) -> Path:
    return settings.artifacts_path / job_id


def adapter_dir(settings: Settings, job_id: str) -> Path:
    return job_artifacts_dir(settings, job_id) / "adapter"


def adapter_archive(settings: Settings, job_id: str) -> Path:
    return job_artifacts_dir(settings, job_id) / "adapter.tar.gz"


def checkpoint_dir(settings: Settings, job_id: str, step: int) -> Path:
    return job_artifacts_dir(settings, job_id) / "checkpoints" / f"step-{step}"


def checkpoint_archive(settings: Settings, job_id: str, step: int) -> Path:
    return job_artifacts_dir(settings, job_id) / "checkpoints" / f"step-{step}.tar.gz"
