"""Who removes a run's resumable checkpoints: the worker, for a run on its own machine (it reads,
and on S3 uploads, each after the trainer reported it), or the trainer (its newest two) on a Ray
cluster, whose disks the worker does not tend."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.training.precision import resolve_precision
from worker.training.run import _trainer_arguments
from worker.training.spec import TrainingSpec


@pytest.mark.parametrize(("worker_removes", "kept"), [(True, None), (False, 2)])
def test_the_trainer_rotates_its_checkpoints_only_where_the_worker_does_not(
    tmp_path: Path, worker_removes: bool, kept: int | None
) -> None:
    spec = TrainingSpec(
        job_id="ftjob-1",
        base_model_dir=str(tmp_path),
        training_file=str(tmp_path / "train.jsonl"),
        output_dir=str(tmp_path / "out"),
        n_epochs=1,
        batch_size=1,
        learning_rate=1e-4,
        seed=0,
        worker_removes_checkpoints=worker_removes,
    )
    arguments = _trainer_arguments(spec, resolve_precision("fp32"), False, "adamw_torch", False)
    assert arguments["save_total_limit"] == kept
