"""Every object we answer validates strictly against the official openai SDK's own types."""

from __future__ import annotations

from fastapi.testclient import TestClient
from openai.types import FileObject, Model
from openai.types.fine_tuning import FineTuningJob, FineTuningJobEvent
from pydantic import BaseModel

from tests.conftest import TINY_MODEL


def strict(model: type[BaseModel], body: dict) -> None:
    """Validate without the SDK's leniency: wrong or missing typed fields raise."""
    model.model_validate(body, strict=True)


def test_file_job_event_and_model_objects_match_the_sdk_types(client: TestClient, training_file: str) -> None:
    strict(FileObject, client.get(f"/v1/files/{training_file}").json())
    job = client.post(
        "/v1/fine_tuning/jobs",
        json={"model": TINY_MODEL, "training_file": training_file, "hyperparameters": {"n_epochs": 2}},
    ).json()
    strict(FineTuningJob, job)
    for event in client.get(f"/v1/fine_tuning/jobs/{job['id']}/events").json()["data"]:
        strict(FineTuningJobEvent, event)
    for model in client.get("/v1/models").json()["data"]:
        strict(Model, model)
