"""A run that trains on from an earlier fine-tune starts where that run ended: its first steps' loss
is the earlier run's last, not the base model's, on the same data; and the artifact records the chain."""

from __future__ import annotations

import json
from pathlib import Path

from tests.training.trainer_runs import run_trainer, toy_spec


def test_training_on_from_an_adapter_starts_at_its_loss(tmp_path: Path, model_dir: Path) -> None:
    earlier = toy_spec(tmp_path / "earlier", model_dir, n_train=16, n_epochs=3)
    first = run_trainer(tmp_path / "earlier" / "spec.json")
    assert first.returncode == 0, first.stderr[-3000:]
    earlier_losses = [line["train_loss"] for line in first.events if line["event"] == "metrics"]

    start = {
        "model": "ft:tiny:default::earlier",
        "job_id": earlier.job_id,
        "step": None,
        "base_model": "tiny",
        "artifact_format": "peft",
        "directory": str(earlier.artifact_dir),
    }
    later = toy_spec(
        tmp_path / "later", model_dir, n_train=16, n_epochs=1, job_id="ftjob-later", start_from=start
    )
    second = run_trainer(tmp_path / "later" / "spec.json")
    assert second.returncode == 0, second.stderr[-3000:]
    later_losses = [line["train_loss"] for line in second.events if line["event"] == "metrics"]

    # Same data, same batches: the later run's first epoch is near the earlier run's last, far below
    # the earlier run's first (the base model's).
    earlier_first, earlier_last = sum(earlier_losses[:4]) / 4, sum(earlier_losses[-4:]) / 4
    later_first = sum(later_losses[:4]) / 4
    assert later_first < earlier_first - 0.5 * (earlier_first - earlier_last), (earlier_losses, later_losses)
    record = json.loads((Path(later.artifact_dir) / "tunery.json").read_text())
    assert record["started_from"]["job_id"] == earlier.job_id
