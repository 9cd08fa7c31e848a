"""A resumable checkpoint is named as the job's resume point only once it is whole where the next
worker will look: on the worker's disk, and on S3 in the bucket. A trainer that runs ahead of its
worker rotates checkpoints away before their lines are read; naming one of those would send the job
back to the start when it resumes."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from api.config import Settings
from api.fine_tuning import artifacts
from tests.support.storage import both_storages as storage  # noqa: F401 (a fixture)
from tests.support.storage import storage_settings, stored_objects
from worker.jobs.progress import record, remove_local, remove_replaced, upload_resumable
from worker.training.progress import Resumable
from worker.training.spec import TrainingSpec


def runtime(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> SimpleNamespace:
    return SimpleNamespace(
        settings=Settings(data_dir=tmp_path / "data", **storage_settings(backend, request))
    )


@pytest.fixture
def rt(
    tmp_path: Path,
    storage: str,  # noqa: F811 (the fixture: local and s3)
    request: pytest.FixtureRequest,
) -> SimpleNamespace:
    return runtime(tmp_path, storage, request)


def checkpoint(settings: Settings, step: int, *, whole: bool = True) -> Path:
    directory = settings.data_path / "jobs" / "ftjob-1" / "output" / "trainer" / f"checkpoint-{step}"
    directory.mkdir(parents=True)
    (directory / "adapter_model.safetensors").write_bytes(b"weights")
    if whole:
        (directory / "trainer_state.json").write_text(f'{{"global_step": {step}}}')
    return directory


def test_a_whole_checkpoint_is_stored_and_named(
    rt: SimpleNamespace,
    storage: str,  # noqa: F811 (the fixture: local and s3)
) -> None:
    directory = checkpoint(rt.settings, 10)
    assert upload_resumable(rt, "ftjob-1", Resumable(step=10, path=str(directory))) is True
    if storage == "s3":
        key = artifacts.key_of(rt.settings, directory.resolve())
        assert {f"{key}/trainer_state.json", f"{key}/adapter_model.safetensors"} <= set(
            stored_objects(rt.settings)
        )


def test_a_checkpoint_rotated_away_before_its_line_was_read_is_not_named(
    rt: SimpleNamespace,
    storage: str,  # noqa: F811 (the fixture: local and s3)
) -> None:
    gone = rt.settings.data_path / "jobs" / "ftjob-1" / "output" / "trainer" / "checkpoint-25"
    assert upload_resumable(rt, "ftjob-1", Resumable(step=25, path=str(gone))) is False
    if storage == "s3":
        assert stored_objects(rt.settings, "jobs/") == []  # nothing was uploaded for it either


def test_a_checkpoint_without_its_trainer_state_is_not_named(
    rt: SimpleNamespace,
) -> None:
    partial = checkpoint(rt.settings, 15, whole=False)
    assert upload_resumable(rt, "ftjob-1", Resumable(step=15, path=str(partial))) is False


def work_directory(settings: Settings, worker_removes: bool) -> Path:
    directory = settings.data_path / "jobs" / "ftjob-1"
    directory.mkdir(parents=True, exist_ok=True)
    spec = TrainingSpec(
        job_id="ftjob-1",
        base_model_dir=str(settings.models_path),
        training_file=str(directory / "train.jsonl"),
        output_dir=str(directory / "output"),
        n_epochs=1,
        batch_size=1,
        learning_rate=1e-4,
        seed=0,
        worker_removes_checkpoints=worker_removes,
    )
    spec.write(directory / "spec.json")
    return directory


@pytest.mark.parametrize("worker_removes", [True, False])
def test_a_checkpoint_that_cannot_be_named_is_removed_where_the_worker_tends_them(
    tmp_path: Path, worker_removes: bool, request: pytest.FixtureRequest
) -> None:
    """Where the trainer leaves its checkpoints to the worker (a run on this machine), one the worker
    will never name is removed at once; on a Ray cluster the trainer keeps its newest two itself."""
    rt = runtime(tmp_path, "local", request)
    work_directory(rt.settings, worker_removes)
    partial = checkpoint(rt.settings, 15, whole=False)
    record(rt, "ftjob-1", Resumable(step=15, path=str(partial)), started=0)
    assert partial.exists() is not worker_removes


@pytest.mark.parametrize("worker_removes", [True, False])
def test_replaced_checkpoints_are_removed_where_the_worker_tends_them(
    tmp_path: Path, worker_removes: bool, request: pytest.FixtureRequest
) -> None:
    rt = runtime(tmp_path, "local", request)
    directory = work_directory(rt.settings, worker_removes)
    old, newer = checkpoint(rt.settings, 5), checkpoint(rt.settings, 10)
    outside = tmp_path / "elsewhere" / "checkpoint-5"
    outside.mkdir(parents=True)
    remove_replaced(rt, "ftjob-1", [str(old.relative_to(directory))])
    remove_local(rt, "ftjob-1", [str(outside), str(directory)])
    assert old.exists() is not worker_removes
    assert newer.is_dir() and outside.is_dir() and directory.is_dir()  # never more than it names
