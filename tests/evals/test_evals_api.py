"""client.evals against the in-process API: create, read, list, update, delete; each bad field named;
another project's evals, runs and models as unknown as missing ones."""

from __future__ import annotations

import time
from typing import Any

import openai
import pytest
from fastapi.testclient import TestClient

from tests.api.test_jobs import create as create_job
from tests.conftest import TINY_MODEL
from tests.support.api_objects import succeed_with_checkpoints
from tests.support.evals import DOCUMENTED, LABEL_SCHEMA, custom, row
from tests.support.openai_graders import GUIDE_STRING_CHECK

pytestmark = pytest.mark.integration
COMPLETIONS = {
    "type": "completions",
    "model": TINY_MODEL,
    "input_messages": {"type": "template", "template": [{"role": "user", "content": "Say {{item.label}}"}]},
    "source": {"type": "file_content", "content": [{"item": {"label": "yes"}}]},
    "sampling_params": {"temperature": 0, "max_completion_tokens": 4},
}


def make_eval(sdk: openai.OpenAI, **overrides: Any) -> Any:
    body: dict[str, Any] = {
        "name": "labels",
        "data_source_config": custom(LABEL_SCHEMA),
        "testing_criteria": [GUIDE_STRING_CHECK],
        **overrides,
    }
    return sdk.evals.create(**body)


def test_an_eval_is_created_read_listed_updated_and_deleted(sdk: openai.OpenAI) -> None:
    made = make_eval(sdk, metadata={"team": "a"})
    assert made.object == "eval" and made.id.startswith("eval_")
    assert made.data_source_config.type == "custom"
    assert made.data_source_config.schema_["properties"]["item"] == LABEL_SCHEMA  # type: ignore[union-attr]
    assert made.data_source_config.schema_["required"] == ["item", "sample"]  # type: ignore[union-attr]
    assert made.testing_criteria[0].name == GUIDE_STRING_CHECK["name"]
    assert sdk.evals.retrieve(made.id).name == "labels"
    second = make_eval(sdk, name="second")
    assert [e.id for e in sdk.evals.list(limit=1)] == [made.id, second.id]  # the SDK followed the cursor
    assert [e.id for e in sdk.evals.list(order="desc")] == [second.id, made.id]
    time.sleep(1.1)  # unix seconds: the update is a second later than both creates
    updated = sdk.evals.update(made.id, name="renamed", metadata={"team": "b"})
    assert updated.name == "renamed" and updated.metadata == {"team": "b"}
    assert next(e.id for e in sdk.evals.list(order="desc", order_by="updated_at")) == made.id
    deleted = sdk.evals.delete(made.id)
    assert deleted.deleted and deleted.eval_id == made.id
    with pytest.raises(openai.NotFoundError):
        sdk.evals.retrieve(made.id)


@pytest.mark.parametrize(
    ("overrides", "param"),
    [
        (
            {"testing_criteria": [{**GUIDE_STRING_CHECK, "operation": "equals"}]},
            "testing_criteria.0.operation",
        ),
        (
            {"testing_criteria": [{**DOCUMENTED["text_similarity"][0], "pass_threshold": None}]},
            "testing_criteria.0.pass_threshold",
        ),
        ({"testing_criteria": [GUIDE_STRING_CHECK, GUIDE_STRING_CHECK]}, "testing_criteria.1.name"),
        ({"testing_criteria": [{**GUIDE_STRING_CHECK, "input": "{{output}}"}]}, "testing_criteria.0"),
        ({"data_source_config": custom({"type": "objekt"})}, "data_source_config.item_schema"),
        ({"data_source_config": {"type": "logs"}}, "data_source_config.type"),
        ({"data_source_config": {"type": "custom"}}, "data_source_config.item_schema"),
        (
            {
                "data_source_config": custom(
                    {
                        "type": "object",
                        "properties": {"text": {"type": "string"}},
                        "additionalProperties": False,
                    }
                )
            },
            "testing_criteria.0",
        ),
    ],
)
def test_a_bad_eval_is_refused_naming_the_field(sdk: openai.OpenAI, overrides: dict, param: str) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        make_eval(sdk, **overrides)
    assert refused.value.param == param, refused.value.message


@pytest.mark.parametrize(
    ("data_source", "param"),
    [
        ({"type": "jsonl"}, "data_source.source"),
        ({"type": "jsonl", "source": {"type": "file_id", "id": "file-nope"}}, "data_source.source.id"),
        (
            {"type": "jsonl", "source": {"type": "file_content", "content": [{"sample": {}}]}},
            "data_source.source.content.0.item",
        ),
        ({"type": "responses", "source": {"type": "responses"}}, "data_source.type"),
        ({**COMPLETIONS, "sampling_params": {"temperature": 5}}, "data_source.sampling_params.temperature"),
        ({**COMPLETIONS, "sampling_params": {"tools": []}}, "data_source.sampling_params.tools"),
        (
            {
                **COMPLETIONS,
                "input_messages": {
                    "type": "template",
                    "template": [{"role": "user", "content": "{{sample.x}}"}],
                },
            },
            "data_source.input_messages.template.0.content",
        ),
    ],
)
def test_a_bad_run_is_refused_naming_the_field(sdk: openai.OpenAI, data_source: dict, param: str) -> None:
    made = make_eval(sdk)
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.evals.runs.create(made.id, data_source=data_source)  # type: ignore[arg-type]
    assert refused.value.param == param, refused.value.message


def test_a_run_is_queued_listed_canceled_and_deleted(sdk: openai.OpenAI) -> None:
    made = make_eval(sdk)
    content = {"type": "file_content", "content": [row({"label": "a"}, "a")]}
    first = sdk.evals.runs.create(made.id, name="first", data_source={"type": "jsonl", "source": content})  # type: ignore[arg-type]
    assert first.object == "eval.run" and first.status == "queued" and first.eval_id == made.id
    assert (
        first.result_counts.total == 0
        and first.per_testing_criteria_results[0].testing_criteria == GUIDE_STRING_CHECK["name"]
    )
    completions = sdk.evals.runs.create(made.id, data_source=COMPLETIONS)  # type: ignore[arg-type]
    assert completions.model == TINY_MODEL
    assert [r.id for r in sdk.evals.runs.list(made.id, limit=1)] == [first.id, completions.id]
    assert [r.id for r in sdk.evals.runs.list(made.id, status="queued", order="desc")] == [
        completions.id,
        first.id,
    ]
    canceled = sdk.evals.runs.cancel(first.id, eval_id=made.id)
    assert canceled.status == "canceled"
    assert [r.id for r in sdk.evals.runs.list(made.id, status="canceled")] == [first.id]
    with pytest.raises(openai.BadRequestError):
        sdk.evals.runs.cancel(first.id, eval_id=made.id)
    assert list(sdk.evals.runs.output_items.list(first.id, eval_id=made.id)) == []
    assert sdk.evals.runs.delete(first.id, eval_id=made.id).deleted
    with pytest.raises(openai.NotFoundError):
        sdk.evals.runs.retrieve(first.id, eval_id=made.id)


def test_another_projects_evals_and_models_are_404(
    app: Any,
    client: TestClient,
    sdk: openai.OpenAI,
    other_client: TestClient,
    other_sdk: openai.OpenAI,
    training_file: str,
) -> None:
    theirs = make_eval(other_sdk)
    with pytest.raises(openai.NotFoundError):
        sdk.evals.retrieve(theirs.id)
    with pytest.raises(openai.NotFoundError):
        sdk.evals.runs.create(theirs.id, data_source=COMPLETIONS)  # type: ignore[arg-type]
    assert [e.id for e in sdk.evals.list()] == []
    # A fine-tuned model of ours: another project may not run an eval on it.
    job = create_job(client, training_file).json()
    (checkpoint,) = succeed_with_checkpoints(app, job["id"], steps=(2,))
    model = client.get(f"/v1/fine_tuning/jobs/{job['id']}").json()["fine_tuned_model"]
    with pytest.raises(openai.NotFoundError) as hidden:
        other_sdk.evals.runs.create(theirs.id, data_source={**COMPLETIONS, "model": model})  # type: ignore[arg-type]
    assert hidden.value.code == "model_not_found" and hidden.value.param == "data_source.model"
    ours = make_eval(sdk)
    assert sdk.evals.runs.create(ours.id, data_source={**COMPLETIONS, "model": model}).model == model  # type: ignore[arg-type]
    on_checkpoint = sdk.evals.runs.create(ours.id, data_source={**COMPLETIONS, "model": checkpoint})  # type: ignore[arg-type]
    assert on_checkpoint.model == checkpoint


def test_an_eval_of_a_file_reads_its_schema_from_the_file(client: TestClient, sdk: openai.OpenAI) -> None:
    lines = b'{"label": "a", "n": 1}\n{"label": "b"}\n'
    uploaded = sdk.files.create(file=("items.jsonl", lines), purpose="evals")  # type: ignore[arg-type]
    made = sdk.evals.create(
        data_source_config={"type": "file", "file_id": uploaded.id},  # type: ignore[typeddict-item]
        testing_criteria=[GUIDE_STRING_CHECK],  # type: ignore[list-item]
    )
    schema = made.data_source_config.schema_["properties"]["item"]  # type: ignore[union-attr]
    assert schema["properties"] == {"label": {"type": "string"}, "n": {"type": "number"}}
    assert schema["required"] == ["label"]
    # A run of it may leave out its source: the eval's file.
    run = sdk.evals.runs.create(made.id, data_source={"type": "jsonl"})  # type: ignore[arg-type, typeddict-item]
    assert run.data_source.source.id == uploaded.id  # type: ignore[union-attr]


def test_a_job_names_an_eval_of_its_own_project(
    sdk: openai.OpenAI, other_sdk: openai.OpenAI, training_file: str
) -> None:
    ours, theirs = make_eval(sdk), make_eval(other_sdk)
    data_source = {key: value for key, value in COMPLETIONS.items() if key != "model"}

    def job(link: dict) -> Any:
        return sdk.fine_tuning.jobs.create(
            model=TINY_MODEL, training_file=training_file, extra_body={"eval": link}
        )

    for link, param in (
        ({"eval_id": theirs.id, "data_source": data_source}, "eval.eval_id"),
        (
            {"eval_id": ours.id, "data_source": {"type": "jsonl", "source": data_source["source"]}},
            "eval.data_source.type",
        ),
        (
            {"eval_id": ours.id, "data_source": {**data_source, "sampling_params": {"top_k": 3}}},
            "eval.data_source.sampling_params.top_k",
        ),
        ({"eval_id": ours.id}, "eval.data_source"),
    ):
        with pytest.raises(openai.BadRequestError) as refused:
            job(link)
        assert refused.value.param == param, refused.value.message
    made = job({"eval_id": ours.id, "data_source": data_source})
    linked = (made.model_extra or {})["eval"]
    assert linked["eval_id"] == ours.id and "model" not in linked["data_source"]
    assert sdk.fine_tuning.jobs.retrieve(made.id).model_extra["eval"] == linked  # type: ignore[index]
