"""Every recipe and method, asked for through the API and trained by the worker's own code path:
create (with `recipe` and `method`) -> validate -> train in a child process -> published artifact.

The trainer's own tests (tests/training) check what each recipe trains and that loss falls; these
check that the service carries each recipe from the request to a stored, downloadable artifact.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.models.store import ModelStore
from tests.support.tiny_model import (
    build_tiny_chat_model,
    toy_chat_examples,
    toy_classification_examples,
    toy_preference_examples,
    write_jsonl,
)
from worker.jobs.run import run_job
from worker.jobs.validate import validate_job
from worker.runtime import Runtime

pytestmark = pytest.mark.integration
BIASED_MODEL = "tiny-llama-biased"  # BitFit needs bias terms to train


@pytest.fixture
def backend() -> str:
    return "sqlite"  # the recipe is the subject here, not the database: once is enough


@pytest.fixture(scope="module")
def biased_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_chat_model(tmp_path_factory.mktemp("biased") / "model", with_biases=True)


def upload(client: TestClient, tmp_path: Path, examples: list[dict[str, Any]]) -> str:
    path = write_jsonl(tmp_path / "data.jsonl", examples)
    with path.open("rb") as stream:
        response = client.post(
            "/v1/files", files={"file": (path.name, stream)}, data={"purpose": "fine-tune"}
        )
    assert response.status_code == 200, response.text
    return response.json()["id"]


def train(client: TestClient, runtime: Runtime, body: dict[str, Any]) -> dict[str, Any]:
    created = client.post("/v1/fine_tuning/jobs", json=body)
    assert created.status_code == 200, created.text
    job_id = created.json()["id"]
    validate_job(runtime, job_id)
    run_job(runtime, job_id)
    return client.get(f"/v1/fine_tuning/jobs/{job_id}").json()


def artifact_files(client: TestClient, job_id: str) -> set[str]:
    archive = client.get(f"/v1/fine_tuning/jobs/{job_id}/adapter")
    assert archive.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(archive.content)) as tar:
        return {Path(name).name for name in tar.getnames()}


@pytest.mark.parametrize(
    ("recipe_type", "artifact"),
    [
        ("lora", "adapter_config.json"),
        ("qlora", "adapter_config.json"),
        ("lora_int8", "adapter_config.json"),
        ("dora", "adapter_config.json"),
        ("ia3", "adapter_config.json"),
        ("prefix_tuning", "adapter_config.json"),
        ("prompt_tuning", "adapter_config.json"),
        ("bitfit", "config.json"),
        ("freeze", "config.json"),
        ("full", "config.json"),
    ],
)
def test_each_recipe_trains_and_publishes_its_artifact(
    client: TestClient,
    runtime: Runtime,
    tmp_path: Path,
    biased_model_dir: Path,
    recipe_type: str,
    artifact: str,
) -> None:
    model = "tiny-llama"
    if recipe_type == "bitfit":
        ModelStore(runtime.settings.models_path).import_directory(biased_model_dir, BIASED_MODEL)
        model = BIASED_MODEL
    job = train(
        client,
        runtime,
        {
            "model": model,
            "training_file": upload(client, tmp_path, toy_chat_examples(12)),
            "hyperparameters": {"n_epochs": 1, "batch_size": 4},
            "recipe": {"type": recipe_type, "max_seq_length": 64},
        },
    )
    assert job["status"] == "succeeded", job["error"]
    assert job["recipe"]["type"] == recipe_type
    files = artifact_files(client, job["id"])
    assert artifact in files and "tunery.json" in files
    checkpoints = client.get(f"/v1/fine_tuning/jobs/{job['id']}/checkpoints").json()["data"]
    assert [c["step_number"] for c in checkpoints] == [3]


def test_dpo_trains_on_preference_pairs(client: TestClient, runtime: Runtime, tmp_path: Path) -> None:
    job = train(
        client,
        runtime,
        {
            "model": "tiny-llama",
            "training_file": upload(client, tmp_path, toy_preference_examples(12)),
            "method": {
                "type": "dpo",
                "dpo": {"hyperparameters": {"beta": 0.2, "n_epochs": 1, "batch_size": 4}},
            },
        },
    )
    assert job["status"] == "succeeded", job["error"]
    assert job["method"]["dpo"]["hyperparameters"]["beta"] == 0.2
    assert "adapter_config.json" in artifact_files(client, job["id"])


def test_classification_records_its_labels(client: TestClient, runtime: Runtime, tmp_path: Path) -> None:
    examples = toy_classification_examples(12)
    job = train(
        client,
        runtime,
        {
            "model": "tiny-llama",
            "training_file": upload(client, tmp_path, examples),
            "method": {"type": "classification", "classification": {"hyperparameters": {"n_epochs": 1}}},
        },
    )
    assert job["status"] == "succeeded", job["error"]
    labels = sorted({str(e["label"]) for e in examples})
    assert job["method"]["classification"]["labels"] == labels
    with tarfile.open(
        fileobj=io.BytesIO(client.get(f"/v1/fine_tuning/jobs/{job['id']}/adapter").content)
    ) as tar:
        names = tar.getnames()
        record = json.load(tar.extractfile(next(n for n in names if n.endswith("tunery.json"))))  # type: ignore[arg-type]
    assert record["method"] == "classification"


def test_a_job_from_a_fine_tuned_model_trains_on_from_its_adapter(
    client: TestClient, runtime: Runtime, tmp_path: Path
) -> None:
    training_file = upload(client, tmp_path, toy_chat_examples(12))
    hyperparameters = {"n_epochs": 3, "batch_size": 4, "learning_rate_multiplier": 20}
    body = {"model": "tiny-llama", "training_file": training_file, "hyperparameters": hyperparameters}
    earlier = train(client, runtime, {**body, "recipe": {"type": "lora", "max_seq_length": 64}})
    assert earlier["status"] == "succeeded", earlier
    later = train(
        client,
        runtime,
        {**body, "model": earlier["fine_tuned_model"], "recipe": {"type": "lora", "max_seq_length": 64}},
    )
    assert later["status"] == "succeeded", later
    assert later["model"] == earlier["fine_tuned_model"]
    assert later["fine_tuned_model"].startswith("ft:tiny-llama:")  # named after the original base

    def losses(job: dict[str, Any]) -> list[float]:
        events = client.get(f"/v1/fine_tuning/jobs/{job['id']}/events?limit=100").json()["data"]
        steps = sorted((e["data"]["step"], e["data"]["train_loss"]) for e in events if e["type"] == "metrics")
        return [loss for _, loss in steps]

    # 3 steps an epoch; same data: the later job's first epoch is near the earlier's last, not its first.
    before, after = losses(earlier), losses(later)
    first, last, later_first = (sum(losses) / 3 for losses in (before[:3], before[-3:], after[:3]))
    assert last < first and abs(later_first - last) < abs(later_first - first), (before, after)
    record = json.loads(
        (runtime.settings.artifacts_path / later["id"] / "adapter" / "tunery.json").read_text()
    )
    assert record["started_from"]["job_id"] == earlier["id"]
