"""An eval measures a fine-tune against its base, through real `tunery api`, `tunery worker` and
`tunery inference` processes, driven only by the official openai SDK.

The toy task: every fruit is purple, which the tiny model learns in three epochs and its random base
never says. A string_check eval over eight fruits: a completions run on the base scores 0; the job,
created with Tunery's `eval` extension, starts a run on its fine-tuned model and one on its base by
itself once it succeeds, and the fine-tuned one scores 8 of 8."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from openai import NotFoundError, OpenAI

from tests.conftest import TINY_MODEL
from tests.e2e.test_fine_tune_with_openai_sdk import wait_for_terminal
from tests.inference.test_chat_with_openai_sdk import (  # noqa: F401
    ANSWER,
    backend,
    one_answer_examples,
    other_project,
    service,
)
from tests.support.evals import wait_for_run
from tests.support.processes import LiveService
from tests.support.tiny_model import FRUIT_COLOURS, SYSTEM_PROMPT, write_jsonl

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
SCHEMA = {
    "type": "object",
    "properties": {"fruit": {"type": "string"}, "answer": {"type": "string"}},
    "required": ["fruit", "answer"],
}
SAYS_THE_ANSWER = {
    "type": "string_check",
    "name": "says the answer",
    "input": "{{sample.output_text}}",
    "reference": "{{item.answer}}",
    "operation": "eq",
}


def completions(file_id: str, model: str | None = None) -> dict:
    source = {
        "type": "completions",
        "source": {"type": "file_id", "id": file_id},
        "input_messages": {
            "type": "template",
            "template": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": "What colour is a {{item.fruit}}?"},
            ],
        },
        "sampling_params": {"temperature": 0, "max_completion_tokens": 30},
    }
    return {**source, "model": model} if model else source


def test_an_eval_scores_the_fine_tune_high_and_its_base_low(service: LiveService, tmp_path: Path) -> None:  # noqa: F811
    client = OpenAI(base_url=service.base_url, api_key=service.api_key, max_retries=0)
    items = tmp_path / "fruit-items.jsonl"
    items.write_text(
        "".join(json.dumps({"item": {"fruit": f, "answer": ANSWER}}) + "\n" for f in FRUIT_COLOURS)
    )
    item_file = client.files.create(file=items.open("rb"), purpose="evals")
    made = client.evals.create(
        name="purple",
        data_source_config={"type": "custom", "item_schema": SCHEMA, "include_sample_schema": True},
        testing_criteria=[SAYS_THE_ANSWER],  # type: ignore[list-item]
    )

    # The base, asked by hand: it never says purple.
    by_hand = client.evals.runs.create(
        made.id, name="base", data_source=completions(item_file.id, TINY_MODEL)
    )  # type: ignore[arg-type]
    base_run = wait_for_run(client, made.id, by_hand.id, timeout=300, log=service.log_tail)
    assert base_run.status == "completed", (base_run.error, service.log_tail())
    assert (base_run.result_counts.total, base_run.result_counts.passed) == (8, 0)
    assert base_run.model == TINY_MODEL
    usage = base_run.per_model_usage[0]
    assert usage.run_model_name == TINY_MODEL and usage.invocation_count == 8 and usage.completion_tokens > 0
    sample = next(iter(client.evals.runs.output_items.list(by_hand.id, eval_id=made.id))).sample
    assert sample.model == TINY_MODEL and sample.input[-1].content == "What colour is a apple?"
    assert sample.output[0].content != ANSWER and sample.finish_reason in ("stop", "length")

    # The job names the eval: when it succeeds, the two runs start by themselves.
    training = client.files.create(
        file=write_jsonl(tmp_path / "train.jsonl", one_answer_examples(12)).open("rb"), purpose="fine-tune"
    )
    job = client.fine_tuning.jobs.create(
        model=TINY_MODEL,
        training_file=training.id,
        suffix="purple",
        method={
            "type": "supervised",
            "supervised": {
                "hyperparameters": {"n_epochs": 3, "batch_size": 4, "learning_rate_multiplier": 50}
            },
        },
        extra_body={"eval": {"eval_id": made.id, "data_source": completions(item_file.id)}},
    )
    job, _ = wait_for_terminal(client, job.id, service)
    assert job.status == "succeeded", f"{job.error}\n{service.log_tail()}"
    started = [
        e for e in client.fine_tuning.jobs.list_events(job.id, limit=100) if e.message.startswith("Eval runs")
    ]
    assert len(started) == 1, service.log_tail()
    runs = {run["model"]: run["id"] for run in started[0].data["runs"]}  # type: ignore[index]
    assert set(runs) == {job.fine_tuned_model, TINY_MODEL}
    assert all(run_id in started[0].message for run_id in runs.values())

    tuned = wait_for_run(client, made.id, runs[job.fine_tuned_model], timeout=300, log=service.log_tail)
    base = wait_for_run(client, made.id, runs[TINY_MODEL], timeout=300, log=service.log_tail)
    assert tuned.status == base.status == "completed", (tuned.error, base.error, service.log_tail())
    assert (tuned.result_counts.total, tuned.result_counts.passed) == (8, 8), service.log_tail()
    assert base.result_counts.passed == 0
    assert tuned.per_testing_criteria_results[0].passed == 8
    assert tuned.model_extra and tuned.model_extra["fine_tuning_job_id"] == job.id
    tuned_items = list(client.evals.runs.output_items.list(tuned.id, eval_id=made.id))
    assert [item.sample.output[0].content for item in tuned_items] == [ANSWER] * 8
    assert {item.status for item in tuned_items} == {"pass"}
    listed = {run.id for run in client.evals.runs.list(made.id)}
    assert listed == {by_hand.id, tuned.id, base.id}

    # Another project can't run an eval on this fine-tune: as unknown to it as a missing model.
    other, _ = other_project(service)
    theirs = other.evals.create(
        data_source_config={"type": "custom", "item_schema": SCHEMA},
        testing_criteria=[SAYS_THE_ANSWER],  # type: ignore[list-item]
    )
    inline = {"type": "file_content", "content": [{"item": {"fruit": "apple", "answer": ANSWER}}]}
    with pytest.raises(NotFoundError) as hidden:
        other.evals.runs.create(
            theirs.id, data_source={**completions("", job.fine_tuned_model), "source": inline}
        )  # type: ignore[arg-type]
    assert hidden.value.code == "model_not_found"


def test_model_graders_judge_a_jsonl_run_through_the_inference_backend(service: LiveService) -> None:  # noqa: F811
    """score_model and label_model criteria: each item's judge is asked through the inference backend
    (the random tiny model seldom answers with a number or a label: such an item is errored with the
    parse error, never a failed run, and the judge's tokens are counted either way)."""
    client = OpenAI(base_url=service.base_url, api_key=service.api_key, max_retries=0)
    judge_input = [{"role": "user", "content": "Is {{sample.output_text}} the colour of a {{item.fruit}}?"}]
    sampling = {"max_completions_tokens": 4, "seed": 1}
    criteria = [
        {"type": "score_model", "name": "score", "model": TINY_MODEL, "input": judge_input, "range": [0, 10],
         "sampling_params": sampling, "pass_threshold": 5},
        {"type": "label_model", "name": "label", "model": TINY_MODEL, "input": judge_input,
         "labels": ["yes", "no"], "passing_labels": ["yes"]},
    ]  # fmt: skip
    made = client.evals.create(
        data_source_config={
            "type": "custom",
            "item_schema": {"type": "object"},
            "include_sample_schema": True,
        },
        testing_criteria=criteria,  # type: ignore[arg-type]
    )
    content = [
        {"item": {"fruit": fruit}, "sample": {"output_text": colour}}
        for fruit, colour in FRUIT_COLOURS.items()
    ]
    run = client.evals.runs.create(
        made.id, data_source={"type": "jsonl", "source": {"type": "file_content", "content": content}}
    )  # type: ignore[arg-type]
    done = wait_for_run(client, made.id, run.id, timeout=300, log=service.log_tail)
    assert done.status == "completed", (done.error, service.log_tail())
    counts = done.result_counts
    assert counts.total == 8 and counts.passed + counts.failed + counts.errored == 8
    usage = {entry.run_model_name: entry for entry in done.per_model_usage}
    assert (
        usage[TINY_MODEL].invocation_count == 16 and usage[TINY_MODEL].prompt_tokens > 0
    )  # 8 items, 2 judges
    for item in client.evals.runs.output_items.list(run.id, eval_id=made.id):
        assert [result.name for result in item.results] == ["score", "label"]
        for result in item.results:
            error = (result.model_extra or {}).get("error", "")
            assert "does not answer" not in error and "answered 4" not in error, (
                error
            )  # the judge was reached
