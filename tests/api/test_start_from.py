"""Job create from a fine-tuned or checkpoint model (`model="ft:..."`): the project's own models and
checkpoints shared with it; the recipe must fit the starting point; the chain is on the job."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from api.tables import FineTuningJob
from tests.api.test_jobs import create
from tests.conftest import TINY_MODEL
from tests.support.api_objects import succeed_with_checkpoints


def finished(client: TestClient, app, training_file: str, **fields) -> tuple[str, str, list[str]]:  # type: ignore[no-untyped-def]
    job_id = create(client, training_file, **fields).json()["id"]
    checkpoints = succeed_with_checkpoints(app, job_id)
    return job_id, client.get(f"/v1/fine_tuning/jobs/{job_id}").json()["fine_tuned_model"], checkpoints


def stored(app, job_id: str) -> FineTuningJob:  # type: ignore[no-untyped-def]
    with app.state.sessionmaker() as session:
        return session.scalars(select(FineTuningJob).where(FineTuningJob.id == job_id)).one()


def test_a_job_trains_on_from_a_fine_tuned_model_of_the_same_base(
    client: TestClient, app, training_file: str
) -> None:  # type: ignore[no-untyped-def]
    earlier_id, name, _ = finished(client, app, training_file)
    response = create(client, training_file, model=name, suffix="again")
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["model"] == name  # as OpenAI answers it
    row = stored(app, job["id"])
    assert row.model == TINY_MODEL  # the original base: fine_tuned_model will name it
    assert row.start_from == {
        "model": name,
        "job_id": earlier_id,
        "step": None,
        "base_model": TINY_MODEL,
        "artifact_format": "peft",
    }


def test_a_checkpoint_model_is_a_starting_point_too(client: TestClient, app, training_file: str) -> None:  # type: ignore[no-untyped-def]
    _, _, checkpoints = finished(client, app, training_file)
    response = create(client, training_file, model=checkpoints[0])
    assert response.status_code == 200, response.text
    assert stored(app, response.json()["id"]).start_from["step"] == 4


def test_a_lora_of_another_rank_is_refused_saying_so(client: TestClient, app, training_file: str) -> None:  # type: ignore[no-untyped-def]
    _, name, _ = finished(client, app, training_file)
    response = create(client, training_file, model=name, recipe={"type": "lora", "lora_r": 16})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "recipe.lora_r" and error["code"] == "incompatible_starting_model"
    assert "lora_r 8" in error["message"] and "16" in error["message"]
    other_type = create(client, training_file, model=name, recipe={"type": "ia3"})
    assert other_type.status_code == 400 and other_type.json()["error"]["param"] == "recipe.type"
    # qlora trains the same LoRA tensors over a quantized base: it may go on from a lora.
    assert create(client, training_file, model=name, recipe={"type": "qlora"}).status_code == 200


def test_a_whole_model_goes_on_only_as_a_whole_model(client: TestClient, app, training_file: str) -> None:  # type: ignore[no-untyped-def]
    _, name, _ = finished(client, app, training_file, recipe={"type": "full"})
    refused = create(client, training_file, model=name)  # the default recipe is a LoRA
    assert refused.status_code == 400 and "whole-model" in refused.json()["error"]["message"]
    response = create(client, training_file, model=name, recipe={"type": "full"})
    assert response.status_code == 200, response.text
    assert stored(app, response.json()["id"]).start_from["artifact_format"] == "model"


def test_another_projects_model_is_not_found(
    client: TestClient, other_client: TestClient, app, training_file: str
) -> None:  # type: ignore[no-untyped-def]
    _, name, _ = finished(client, app, training_file)
    # The model is looked up before the file: the answer names the model, not the file.
    response = other_client.post("/v1/fine_tuning/jobs", json={"model": name, "training_file": "file-x"})
    assert response.status_code == 404 and response.json()["error"]["param"] == "model"
    assert create(client, training_file, model="ft:tiny-llama:default::nothing").status_code == 404
