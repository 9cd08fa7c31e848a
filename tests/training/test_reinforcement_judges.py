"""Model graders as GRPO's reward: the trainer asks a real `tunery inference` process to judge each
step's answers, at the endpoint the worker writes into the spec, and a judge that can't answer
scores its answers 0 with a warning instead of stopping the run."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.config import Settings
from api.models.store import ModelStore
from tests.conftest import TINY_MODEL
from tests.support.processes import inference_process
from tests.support.services import free_port
from tests.support.tiny_model import write_jsonl
from tests.training.test_reinforcement import prompts, reinforcement_spec
from tests.training.trainer_runs import train_in_process

JUDGE_INPUT = [{"role": "user", "content": "Is '{{sample.output_text}}' the colour {{item.word}}? Score it."}]
SCORE = {
    "type": "score_model",
    "name": "judge",
    "model": TINY_MODEL,
    "input": JUDGE_INPUT,
    "range": [0, 10],
    "sampling_params": {"max_completions_tokens": 4, "seed": 1},
}
LABEL = {
    "type": "label_model",
    "name": "labeller",
    "model": TINY_MODEL,
    "input": JUDGE_INPUT,
    "labels": ["yes", "no"],
    "passing_labels": ["yes"],
}
BOTH = {
    "type": "multi",
    "name": "judges",
    "graders": {"score": SCORE, "label": LABEL},
    "calculate_output": "score / 10 + label",
}


@pytest.fixture(scope="module")
def inference_url(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[str]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("judge-data"), database_url=None, broker_url=None)
    ModelStore(settings.models_path).import_directory(model_dir, TINY_MODEL)
    logs = tmp_path_factory.mktemp("judge-logs")
    with inference_process(settings, logs, {"TUNERY_INFERENCE_PORT": str(free_port())}) as url:
        yield url


def judges_at(url: str) -> dict:
    # What the worker writes for a base model served by the embedded backend (api/graders/judge.py).
    return {
        TINY_MODEL: {
            "url": f"{url}/v1/chat/completions",
            "body": {"model": TINY_MODEL, "target": {"base_model": TINY_MODEL}},
        }
    }


def judged_run(tmp_path: Path, model_dir: Path, grader: dict, judges: dict):  # type: ignore[no-untyped-def]
    spec = reinforcement_spec(
        tmp_path,
        model_dir,
        grader=grader,
        judges=judges,
        training_file=str(write_jsonl(tmp_path / "few.jsonl", prompts(4))),
        num_generations=4,
        max_completion_tokens=4,
        n_epochs=1,
    )
    run = train_in_process(spec)
    warnings = [event["message"] for event in run.of("message") if event.get("level") == "warn"]
    return run, warnings


@pytest.mark.parametrize("grader", [SCORE, BOTH], ids=["score_model", "multi_of_score_and_label"])
def test_model_graders_judge_each_step_through_the_inference_backend(
    tmp_path: Path, model_dir: Path, inference_url: str, grader: dict
) -> None:
    run, warnings = judged_run(tmp_path, model_dir, grader, judges_at(inference_url))
    metrics = run.of("metrics")
    assert len(metrics) == 2 and run.events[-1]["event"] != "error"
    high = 2.0 if grader["type"] == "multi" else 10.0
    assert all(0.0 <= event["train_reward_mean"] <= high for event in metrics), metrics
    # The random tiny judge answers, if rarely with a number or a label: every error is the judge's
    # answer being unreadable, never the judge not being reached.
    assert not [w for w in warnings if "does not answer" in w or "answered 4" in w or "answered 5" in w], (
        warnings
    )
    judged = any(event["train_reward_mean"] > 0 for event in metrics) or any(
        re.search("holds no number|names none of", w) for w in warnings
    )
    assert judged, (metrics, warnings)


def test_a_judge_that_does_not_answer_scores_0_with_a_warning(tmp_path: Path, model_dir: Path) -> None:
    closed = judges_at(f"http://127.0.0.1:{free_port()}")  # nothing listens there
    run, warnings = judged_run(tmp_path, model_dir, SCORE, closed)
    metrics = run.of("metrics")
    assert len(metrics) == 2 and all(event["train_reward_mean"] == 0.0 for event in metrics)
    # One warning a step, for all 8 answers of its 2 prompts.
    assert sum("error on 8 of 8 answers" in w and "does not answer" in w for w in warnings) == 2, warnings


def test_a_judge_the_worker_could_not_resolve_scores_0_saying_why(tmp_path: Path, model_dir: Path) -> None:
    gone = {TINY_MODEL: {"error": "The model 'x' does not exist"}}
    run, warnings = judged_run(tmp_path, model_dir, SCORE, gone)
    assert all(event["train_reward_mean"] == 0.0 for event in run.of("metrics"))
    assert any("does not exist" in w for w in warnings), warnings
