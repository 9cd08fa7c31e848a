"""Every call of the fine-tuning surface through the official `openai` SDK, against real processes.

Each test runs twice: with a default client and with `_strict_response_validation=True`, which
rejects any response that does not match the SDK's types. One wrinkle is kept on purpose: OpenAI
returns the status `paused`, which the SDK's status literal lacks, so a strict client reads paused
jobs through `with_raw_response` (as a strict user would have to against OpenAI too).
"""

from __future__ import annotations

import csv
import functools
import io
import uuid
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from tests.conformance.conftest import ORG_MODEL, UPLOAD_LIMIT, is_strict
from tests.conftest import TINY_MODEL
from tests.support import waiting
from tests.support.processes import LiveService
from tests.support.tiny_model import jsonl, toy_chat_examples

# This file's jobs take a while on a loaded machine: a longer default wait.
wait = functools.partial(waiting.wait, timeout=240, interval=0.3)


pytestmark = pytest.mark.e2e
TERMINAL = {"succeeded", "failed", "cancelled"}


def upload(client: OpenAI, examples: list[dict[str, Any]], name: str = "train.jsonl") -> str:
    return client.files.create(file=(name, jsonl(examples)), purpose="fine-tune").id


def status_of(client: OpenAI, job_id: str) -> str:
    raw = client.fine_tuning.jobs.with_raw_response.retrieve(job_id)
    return str(raw.http_response.json()["status"])


def messages(client: OpenAI, job_id: str) -> list[str]:
    return [e.message for e in client.fine_tuning.jobs.list_events(job_id, limit=1000).data]


def steps(client: OpenAI, job_id: str) -> int:
    newest = client.fine_tuning.jobs.list_events(job_id, limit=1).data
    return int((newest[0].data or {}).get("step", 0)) if newest and newest[0].type == "metrics" else 0


def preference_examples(n: int) -> list[dict[str, Any]]:
    return [
        {
            "input": {"messages": [{"role": "user", "content": f"Say hi number {i}"}]},
            "preferred_output": [{"role": "assistant", "content": "Hi!"}],
            "non_preferred_output": [{"role": "assistant", "content": "No."}],
        }
        for i in range(n)
    ]


class TestFiles:
    def test_create_list_retrieve_content_delete(self, client: OpenAI) -> None:
        ids = [upload(client, toy_chat_examples(10 + i), f"f{i}.jsonl") for i in range(3)]
        first = client.files.retrieve(ids[0])
        assert first.object == "file" and first.purpose == "fine-tune" and first.filename == "f0.jsonl"
        assert first.bytes == len(jsonl(toy_chat_examples(10)))
        assert client.files.wait_for_processing(ids[1]).status == "processed"
        assert client.files.content(ids[0]).content == jsonl(toy_chat_examples(10))
        listed = [f.id for f in client.files.list(purpose="fine-tune", limit=1, order="asc")]
        assert listed[-3:] == ids  # auto-pagination walked page after page, oldest first
        newest = client.files.list(limit=2, order="desc")
        assert [f.id for f in newest.data] == ids[::-1][:2] and newest.has_more
        deleted = client.files.delete(ids[2])
        assert deleted.deleted is True and deleted.id == ids[2]
        with pytest.raises(openai.NotFoundError) as missing:
            client.files.retrieve(ids[2])
        assert missing.value.body["message"]  # type: ignore[index]

    def test_a_file_past_the_size_limit_is_413(self, client: OpenAI) -> None:
        with pytest.raises(openai.APIStatusError) as refused:
            client.files.create(file=("big.jsonl", b"x" * (UPLOAD_LIMIT + 1)), purpose="fine-tune")
        assert refused.value.status_code == 413
        assert refused.value.code == "file_too_large"

    def test_a_broken_file_is_a_bad_request_naming_the_line(self, client: OpenAI) -> None:
        examples = toy_chat_examples(10)
        examples[3]["messages"][1]["role"] = "robot"
        with pytest.raises(openai.BadRequestError) as refused:
            client.files.create(file=("bad.jsonl", jsonl(examples)), purpose="fine-tune")
        assert (
            "line 4: messages[1].role must be one of system, user, assistant, tool" in refused.value.message
        )


class TestJobObjects:
    def test_create_echoes_every_field_then_cancel_while_queued(self, client: OpenAI) -> None:
        training = upload(client, toy_chat_examples(12))
        validation = upload(client, toy_chat_examples(10), "valid.jsonl")
        job = client.fine_tuning.jobs.create(
            model=TINY_MODEL,
            training_file=training,
            validation_file=validation,
            suffix="conf-1",
            seed=7,
            metadata={"suite": "conformance"},
            method={
                "type": "supervised",
                "supervised": {"hyperparameters": {"n_epochs": 2, "batch_size": 2}},
            },
            integrations=[{"type": "wandb", "wandb": {"project": "tunery"}}],
            extra_body={"recipe": {"type": "lora", "lora_r": 4}},
        )
        cancelled = client.fine_tuning.jobs.cancel(job.id)
        assert cancelled.status == "cancelled"
        assert job.status == "validating_files" and job.object == "fine_tuning.job"
        assert (job.model, job.training_file, job.validation_file, job.seed) == (
            TINY_MODEL,
            training,
            validation,
            7,
        )
        assert job.user_provided_suffix == "conf-1" and job.metadata == {"suite": "conformance"}
        assert job.method is not None and job.method.type == "supervised"
        assert job.method.supervised is not None and job.method.supervised.hyperparameters is not None
        assert job.method.supervised.hyperparameters.n_epochs == 2
        assert job.integrations is not None and job.integrations[0].wandb.project == "tunery"
        assert (job.model_extra or {})["recipe"]["lora_r"] == 4
        assert (job.model_extra or {})["recipe"]["lora_alpha"] == 16  # defaults filled in
        with pytest.raises(openai.BadRequestError):
            client.fine_tuning.jobs.cancel(job.id)  # cannot succeed on retry: 400, not 409

    def test_dpo_and_legacy_hyperparameters(self, client: OpenAI) -> None:
        preferences = upload(client, preference_examples(10), "prefs.jsonl")
        dpo = client.fine_tuning.jobs.create(
            model=TINY_MODEL,
            training_file=preferences,
            method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2, "n_epochs": 1}}},
        )
        client.fine_tuning.jobs.cancel(dpo.id)
        assert dpo.method is not None and dpo.method.dpo is not None
        assert dpo.method.dpo.hyperparameters is not None and dpo.method.dpo.hyperparameters.beta == 0.2
        legacy = client.fine_tuning.jobs.create(
            model=ORG_MODEL,
            training_file=upload(client, toy_chat_examples(10)),
            hyperparameters={"n_epochs": 1},
        )
        client.fine_tuning.jobs.cancel(legacy.id)
        assert legacy.hyperparameters.n_epochs == 1 and legacy.model == ORG_MODEL

    def test_list_pages_and_filters_by_metadata(self, client: OpenAI) -> None:
        run = uuid.uuid4().hex[:8]
        training = upload(client, toy_chat_examples(10))
        made = []
        for i in range(5):
            job = client.fine_tuning.jobs.create(
                model=TINY_MODEL, training_file=training, metadata={"run": run, "i": str(i)}
            )
            client.fine_tuning.jobs.cancel(job.id)
            made.append(job.id)
        page = client.fine_tuning.jobs.list(limit=2, metadata={"run": run})
        assert [j.id for j in page.data] == made[::-1][:2] and page.has_more
        every = [j.id for j in client.fine_tuning.jobs.list(limit=2, metadata={"run": run})]
        assert every == made[::-1]  # newest first, across three pages
        one = client.fine_tuning.jobs.list(metadata={"run": run, "i": "3"})
        assert [j.id for j in one.data] == [made[3]]
        events = list(client.fine_tuning.jobs.list_events(made[0], limit=1))
        assert len(events) >= 3 and events[0].message == "Fine-tuning job cancelled by the user"
        assert all(e.object == "fine_tuning.job.event" for e in events)


class TestTraining:
    def test_cancel_stops_a_running_job(self, client: OpenAI, live: LiveService) -> None:
        job = client.fine_tuning.jobs.create(
            model=TINY_MODEL,
            training_file=upload(client, toy_chat_examples(16)),
            hyperparameters={"n_epochs": 50, "batch_size": 1},
        )
        wait(lambda: steps(client, job.id) >= 2, "training to start", live)
        assert client.fine_tuning.jobs.cancel(job.id).status == "cancelled"
        wait(lambda: "Trainer stopped" in messages(client, job.id), "the trainer to stop", live, timeout=15)
        assert client.fine_tuning.jobs.retrieve(job.id).fine_tuned_model is None

    def test_pause_resume_succeed_then_checkpoints_models_and_sharing(
        self, client: OpenAI, live: LiveService, other_project_key: str
    ) -> None:
        # 96 steps: long enough that the pause (seen within a heartbeat) lands mid-training.
        training = upload(client, toy_chat_examples(32))
        validation = upload(client, toy_chat_examples(10), "valid.jsonl")
        job = client.fine_tuning.jobs.create(
            model=ORG_MODEL,
            training_file=training,
            validation_file=validation,
            suffix="paused",
            hyperparameters={"n_epochs": 3, "batch_size": 1},
        )
        wait(lambda: steps(client, job.id) >= 5, "step 5", live)
        paused = client.fine_tuning.jobs.with_raw_response.pause(job.id).http_response.json()
        assert paused["status"] == "paused"
        if not is_strict(client):
            assert client.fine_tuning.jobs.retrieve(job.id).status == "paused"  # type: ignore[comparison-overlap]
        wait(lambda: any(m.startswith("Paused at step") for m in messages(client, job.id)), "the pause", live)
        resumed = client.fine_tuning.jobs.resume(job.id)
        assert resumed.status == "queued"
        wait(lambda: status_of(client, job.id) in TERMINAL, "the job to finish", live)
        done = client.fine_tuning.jobs.retrieve(job.id)
        assert done.status == "succeeded", done.error
        assert done.fine_tuned_model is not None and done.fine_tuned_model.startswith(f"ft:{ORG_MODEL}:")
        assert done.fine_tuned_model.split(":")[3] == "paused"
        assert done.trained_tokens and done.finished_at and done.estimated_finish is None

        # Checkpoints: one per epoch, newest first, with OpenAI's metric names and model names.
        checkpoints = list(client.fine_tuning.jobs.checkpoints.list(job.id, limit=2))
        assert [c.step_number for c in checkpoints] == [96, 64, 32]
        for checkpoint in checkpoints:
            assert (
                checkpoint.fine_tuned_model_checkpoint
                == f"{done.fine_tuned_model}:ckpt-step-{checkpoint.step_number}"
            )
            assert checkpoint.metrics.train_loss is not None and checkpoint.metrics.valid_loss is not None
            assert checkpoint.metrics.full_valid_loss is not None

        # The result file: every step once, validation columns filled at epoch ends.
        result = client.files.content(done.result_files[0]).text
        rows = list(csv.DictReader(io.StringIO(result)))
        assert [int(r["step"]) for r in rows] == list(range(1, 97))
        assert [int(r["step"]) for r in rows if r["valid_loss"]] == [32, 64, 96]

        # Models: base (with %2F), fine-tuned and checkpoint models are listed and retrievable.
        ids = {m.id for m in client.models.list()}
        assert {ORG_MODEL, done.fine_tuned_model, checkpoints[0].fine_tuned_model_checkpoint} <= ids
        assert client.models.retrieve(ORG_MODEL).id == ORG_MODEL
        assert client.models.retrieve(done.fine_tuned_model).owned_by == done.organization_id

        # Sharing a checkpoint with another project, which then sees that model and nothing else.
        other_id = _project_of(live, other_project_key)
        shared = checkpoints[1].fine_tuned_model_checkpoint
        permissions = client.fine_tuning.checkpoints.permissions
        granted = permissions.create(shared, project_ids=[other_id])
        assert granted.data[0].project_id == other_id and granted.data[0].object == "checkpoint.permission"
        assert [p.id for p in permissions.list(shared)] == [granted.data[0].id]
        with OpenAI(base_url=live.base_url, api_key=other_project_key) as other:
            assert other.models.retrieve(shared).id == shared
            with pytest.raises(openai.NotFoundError):
                other.fine_tuning.jobs.retrieve(job.id)
            with pytest.raises(openai.NotFoundError):
                other.models.retrieve(done.fine_tuned_model)
        removed = permissions.delete(granted.data[0].id, fine_tuned_model_checkpoint=shared)
        assert removed.deleted is True

        # Deleting the fine-tuned model: gone from models, the job keeps its record.
        assert client.models.delete(done.fine_tuned_model).deleted is True
        with pytest.raises(openai.NotFoundError):
            client.models.retrieve(done.fine_tuned_model)
        assert client.fine_tuning.jobs.retrieve(job.id).fine_tuned_model == done.fine_tuned_model
        with pytest.raises(openai.BadRequestError):
            client.fine_tuning.jobs.cancel(job.id)


class TestErrors:
    def test_each_error_is_the_sdks_exception_with_an_openai_body(
        self, client: OpenAI, live: LiveService
    ) -> None:
        training = upload(client, toy_chat_examples(10))
        cases = [
            (
                openai.BadRequestError,
                lambda: client.fine_tuning.jobs.create(
                    model=TINY_MODEL, training_file=training, suffix="x" * 65
                ),
            ),
            (
                openai.BadRequestError,
                lambda: client.fine_tuning.jobs.create(model=TINY_MODEL, training_file="file-nope"),
            ),
            (
                openai.BadRequestError,
                lambda: client.fine_tuning.jobs.create(model=TINY_MODEL, training_file=training, seed=-1),
            ),
            (
                openai.NotFoundError,
                lambda: client.fine_tuning.jobs.create(model="no-such-model", training_file=training),
            ),
            (openai.NotFoundError, lambda: client.fine_tuning.jobs.retrieve("ftjob-nope")),
            (openai.NotFoundError, lambda: client.fine_tuning.jobs.checkpoints.list("ftjob-nope")),
            (openai.NotFoundError, lambda: client.models.retrieve("ft:nope:x::y")),
            (openai.NotFoundError, lambda: client.files.content("file-nope")),
            (
                openai.BadRequestError,
                lambda: client.fine_tuning.jobs.resume(_queued_then_cancelled(client, training)),
            ),
        ]
        for kind, call in cases:
            with pytest.raises(kind) as raised:
                call()
            body = raised.value.body
            assert isinstance(body, dict) and set(body) >= {"message", "type", "param", "code"}, body
        stranger = OpenAI(base_url=live.base_url, api_key="tun-not-a-real-key-000000")
        with stranger, pytest.raises(openai.AuthenticationError) as denied:
            stranger.models.list()
        assert denied.value.code == "invalid_api_key"


def _queued_then_cancelled(client: OpenAI, training: str) -> str:
    job = client.fine_tuning.jobs.create(model=TINY_MODEL, training_file=training)
    client.fine_tuning.jobs.cancel(job.id)
    return job.id


def _project_of(live: LiveService, key: str) -> str:
    with OpenAI(base_url=live.base_url, api_key=key) as other:
        training = other.files.create(file=("t.jsonl", jsonl(toy_chat_examples(10))), purpose="fine-tune").id
        job = other.fine_tuning.jobs.create(model=TINY_MODEL, training_file=training)
        other.fine_tuning.jobs.cancel(job.id)
        return job.organization_id


def test_raw_rest_calls_work_too(live: LiveService, tmp_path: Path) -> None:
    """Plain HTTP, as curl sends it: multipart upload, JSON create, bearer key."""
    headers = {"Authorization": f"Bearer {live.api_key}"}
    with httpx.Client(base_url=live.base_url, headers=headers) as http:
        uploaded = http.post(
            "/files", files={"file": ("t.jsonl", jsonl(toy_chat_examples(10)))}, data={"purpose": "fine-tune"}
        )
        assert uploaded.status_code == 200, uploaded.text
        created = http.post(
            "/fine_tuning/jobs", json={"model": TINY_MODEL, "training_file": uploaded.json()["id"]}
        )
        assert created.status_code == 200 and created.json()["status"] == "validating_files"
        assert http.post(f"/fine_tuning/jobs/{created.json()['id']}/cancel").json()["status"] == "cancelled"
        assert http.get("/fine_tuning/jobs/nope").json()["error"]["type"] == "invalid_request_error"
