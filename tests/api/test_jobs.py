"""/v1/fine_tuning/jobs over the real database and broker: create, read, list, and bad input."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.config import Settings
from api.queue import VALIDATION_QUEUE
from api.tables import FineTuningJob
from tests.api.test_graders import GUIDE_STRING_CHECK
from tests.conftest import TINY_MODEL
from tests.support.tiny_model import build_tiny_chat_model


def queued_job_ids(settings: Settings, queue: str = VALIDATION_QUEUE) -> list[str]:
    """Job ids in the broker's messages on `queue`, read the way each transport stores them."""
    if settings.broker_url:
        client = redis.Redis.from_url(settings.broker_url)
        payloads = [json.loads(raw) for raw in client.lrange(queue, 0, -1)]
    else:
        folder = settings.broker_path / "queue"
        payloads = [json.loads(p.read_bytes()) for p in sorted(folder.glob(f"*.{queue}.msg"))]
    import base64

    return [json.loads(base64.b64decode(p["body"]))[0][0] for p in payloads]


def create(client: TestClient, training_file: str, **fields: Any):  # type: ignore[no-untyped-def]
    return client.post(
        "/v1/fine_tuning/jobs", json={"model": TINY_MODEL, "training_file": training_file, **fields}
    )


def job_count(app) -> int:  # type: ignore[no-untyped-def]
    with app.state.sessionmaker() as session:
        return session.scalar(select(func.count()).select_from(FineTuningJob))


class TestCreate:
    def test_job_starts_validating_and_is_enqueued_after_commit(
        self, client: TestClient, training_file: str, settings: Settings
    ) -> None:
        response = create(client, training_file, suffix="fruit", metadata={"team": "a"})
        assert response.status_code == 200, response.text
        job = response.json()
        assert job["object"] == "fine_tuning.job"
        assert job["id"].startswith("ftjob-")
        assert job["status"] == "validating_files"
        assert job["model"] == TINY_MODEL
        assert job["training_file"] == training_file
        assert job["fine_tuned_model"] is None
        assert job["result_files"] == []
        assert job["user_provided_suffix"] == "fruit"
        assert job["metadata"] == {"team": "a"}
        assert isinstance(job["seed"], int)
        assert job["hyperparameters"] == {
            "n_epochs": "auto",
            "batch_size": "auto",
            "learning_rate_multiplier": "auto",
        }
        assert job["method"]["type"] == "supervised"
        assert queued_job_ids(settings) == [job["id"]]

    def test_recipe_comes_back_with_defaults_filled(self, client: TestClient, training_file: str) -> None:
        job = create(client, training_file, recipe={"lora_r": 4}).json()
        assert job["recipe"] == {
            "type": "lora",
            "lora_r": 4,
            "lora_alpha": 16,
            "lora_dropout": 0.05,
            "target_modules": "all-linear",
            "num_virtual_tokens": None,
            "trainable_layers": None,
            "max_seq_length": 1024,
            "packing": False,
            "group_by_length": False,
            "gradient_checkpointing": "auto",
            "compile": False,
            "precision": "auto",
            "distributed": "none",
            "num_gpus": 1,
            "num_nodes": 1,
            "fsdp_cpu_offload": False,
            "lr_scheduler": "linear",
            "warmup_ratio": 0.0,
            "weight_decay": 0.0,
            "max_grad_norm": 1.0,
            "train_on_inputs": False,
        }

    @pytest.mark.parametrize(
        "fields",
        [
            {
                "method": {
                    "type": "supervised",
                    "supervised": {"hyperparameters": {"n_epochs": 2, "batch_size": 3}},
                }
            },
            {"hyperparameters": {"n_epochs": 2, "batch_size": 3}},
        ],
        ids=["method", "legacy"],
    )
    def test_hyperparameters_from_method_or_legacy_field(
        self, client: TestClient, training_file: str, fields: dict
    ) -> None:
        job = create(client, training_file, seed=7, **fields).json()
        assert job["hyperparameters"] == {"n_epochs": 2, "batch_size": 3, "learning_rate_multiplier": "auto"}
        assert job["method"]["supervised"]["hyperparameters"] == job["hyperparameters"]
        assert job["seed"] == 7

    def test_events_record_creation(self, client: TestClient, training_file: str) -> None:
        job = create(client, training_file).json()
        events = client.get(f"/v1/fine_tuning/jobs/{job['id']}/events").json()
        messages = [e["message"] for e in events["data"]]
        assert messages == [
            f"Validating training file: {training_file}",
            f"Created fine-tuning job: {job['id']}",
        ]
        assert all(e["object"] == "fine_tuning.job.event" and e["level"] == "info" for e in events["data"])


class TestCreateRefusals:
    @pytest.mark.parametrize(
        ("fields", "status", "param", "code"),
        [
            ({"model": "no-such-model"}, 404, "model", "model_not_found"),
            ({"training_file": "file-missing"}, 400, "training_file", "file_not_found"),
            ({"validation_file": "file-missing"}, 400, "validation_file", "file_not_found"),
            ({"hyperparameters": {"n_epochs": 0}}, 400, "hyperparameters.n_epochs", None),
            (
                {"hyperparameters": {"learning_rate_multiplier": -1}},
                400,
                "hyperparameters.learning_rate_multiplier",
                None,
            ),
            ({"suffix": "has spaces"}, 400, "suffix", None),
            ({"seed": -1}, 400, "seed", None),
            ({"recipe": {"lora_r": 0}}, 400, "recipe.lora_r", None),
            ({"recipe": {"type": "lora", "rank": 8}}, 400, "recipe.rank", None),
            # The tiny Llama has no biases: bitfit would fail in the worker minutes later.
            ({"recipe": {"type": "bitfit"}}, 400, "recipe.type", "invalid_recipe"),
            # FSDP shards float tensors: int8 weights are none, and the reinforcement method is not sharded.
            ({"recipe": {"type": "lora_int8", "distributed": "fsdp", "num_gpus": 2}}, 400, "recipe", None),
            (
                {
                    "method": {"type": "reinforcement", "reinforcement": {"grader": GUIDE_STRING_CHECK}},
                    "recipe": {"distributed": "fsdp", "num_gpus": 2},
                },
                400,
                "recipe.distributed",
                "invalid_recipe",
            ),
            ({"learning_rate": 0.1}, 400, "learning_rate", None),
            ({"method": {"type": "reinforcement"}}, 400, "method.reinforcement.grader", "invalid_grader"),
            ({"method": {"type": "ppo"}}, 400, "method.type", None),
            (
                {"method": {"type": "dpo", "dpo": {"hyperparameters": {"beta": 3}}}},
                400,
                "method.dpo.hyperparameters.beta",
                None,
            ),
            ({"method": {"type": "dpo", "supervised": {}}}, 400, "method", None),
            ({"suffix": "x" * 65}, 400, "suffix", None),
            ({"suffix": "a:b"}, 400, "suffix", None),
            ({"metadata": {f"k{i}": "v" for i in range(17)}}, 400, "metadata", None),
            ({"metadata": {"k": "v" * 513}}, 400, "metadata.k", None),
            ({"metadata": {"k": "a\x00b"}}, 400, None, None),
            ({"integrations": [{"type": "wandb"}]}, 400, "integrations.0.wandb", None),
            (
                {
                    "method": {"type": "supervised", "supervised": {"hyperparameters": {}}},
                    "hyperparameters": {},
                },
                400,
                "hyperparameters",
                None,
            ),
        ],
    )
    def test_bad_create_names_the_field_and_stores_nothing(
        self,
        client: TestClient,
        app,
        training_file: str,
        fields: dict,
        status: int,
        param: str,
        code: str | None,  # type: ignore[no-untyped-def]
    ) -> None:
        body = {"model": TINY_MODEL, "training_file": training_file, **fields}
        response = client.post("/v1/fine_tuning/jobs", json=body)
        assert response.status_code == status, response.text
        error = response.json()["error"]
        assert error["param"] == param
        assert error["type"] == "invalid_request_error"
        if code:
            assert error["code"] == code
        assert job_count(app) == 0

    def test_bitfit_is_refused_only_on_a_base_without_biases(
        self, client: TestClient, app, training_file: str, tmp_path_factory: pytest.TempPathFactory
    ) -> None:  # type: ignore[no-untyped-def]
        biased = build_tiny_chat_model(tmp_path_factory.mktemp("biased") / "model", with_biases=True)
        app.state.model_store.import_directory(biased, "tiny-llama-biased")
        refused = create(client, training_file, recipe={"type": "bitfit"})
        assert refused.status_code == 400
        assert "Recipe types that fit this model: lora" in refused.json()["error"]["message"]
        accepted = create(client, training_file, model="tiny-llama-biased", recipe={"type": "bitfit"})
        assert accepted.status_code == 200, accepted.text

    def test_a_results_file_cannot_be_trained_on(self, client: TestClient, app, settings: Settings) -> None:  # type: ignore[no-untyped-def]
        from api.db import session_scope
        from api.files import service as files_service
        from api.tables import Project

        csv = settings.data_path / "step_metrics.csv"
        csv.write_text("step,train_loss\n1,0.5\n")
        with session_scope(app.state.sessionmaker) as session:
            project = session.scalar(select(Project))
        stored = files_service.stage_result(app.state.file_storage, project.pk, csv)
        with session_scope(app.state.sessionmaker) as session:
            results = files_service.store_result(session, project.pk, stored, csv.name)
        response = create(client, results.id)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_file_purpose"

    def test_a_nul_in_the_url_is_400_not_a_database_error(self, client: TestClient) -> None:
        for url in ("/v1/fine_tuning/jobs?after=%00", "/v1/files/file-%00", "/v1/models/a%00b"):
            response = client.get(url)
            assert response.status_code == 400, (url, response.text)
            assert "NUL" in response.json()["error"]["message"]

    def test_body_that_is_not_json_is_400(self, client: TestClient) -> None:
        response = client.post(
            "/v1/fine_tuning/jobs", content=b"{oops", headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 400
        assert response.json()["error"]["type"] == "invalid_request_error"


class TestRead:
    def test_list_pages_newest_first(self, client: TestClient, training_file: str) -> None:
        ids = [create(client, training_file).json()["id"] for _ in range(3)]
        first = client.get("/v1/fine_tuning/jobs", params={"limit": 2}).json()
        assert [j["id"] for j in first["data"]] == ids[::-1][:2]
        assert first["has_more"] is True
        rest = client.get("/v1/fine_tuning/jobs", params={"limit": 2, "after": first["last_id"]}).json()
        assert [j["id"] for j in rest["data"]] == [ids[0]]
        assert rest["has_more"] is False

    def test_retrieve_and_unknown_job(self, client: TestClient, training_file: str) -> None:
        job = create(client, training_file).json()
        assert client.get(f"/v1/fine_tuning/jobs/{job['id']}").json() == job
        response = client.get("/v1/fine_tuning/jobs/ftjob-nope")
        assert response.status_code == 404
        assert response.json()["error"]["message"] == "No fine-tuning job found with id ftjob-nope"

    def test_adapter_of_an_unfinished_job_is_404(self, client: TestClient, training_file: str) -> None:
        job = create(client, training_file).json()
        assert client.get(f"/v1/fine_tuning/jobs/{job['id']}/adapter").status_code == 404
