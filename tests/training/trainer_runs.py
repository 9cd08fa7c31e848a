"""The trainer as the worker runs it, `python -m worker.training spec.json` in a child process, and
what the tests read back: the JSON lines on stdout, the exit status and the files in output_dir."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from worker.training.spec import TrainingSpec

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class TrainerRun:
    returncode: int
    events: list[dict]
    stderr: str
    spec: TrainingSpec = field(init=False)

    def of(self, kind: str) -> list[dict]:
        return [event for event in self.events if event["event"] == kind]

    def result_rows(self) -> list[dict]:
        with open(self.spec.result_file, newline="") as result_file:
            return list(csv.DictReader(result_file))


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO_ROOT)}


def _parse(stdout: str) -> list[dict]:
    # The protocol's first promise: stdout holds JSON objects, one a line, and nothing else; and
    # each is an event the worker reads (parse_line raises on any other).
    from worker.training.progress import parse_line

    events = [json.loads(line) for line in stdout.splitlines()]
    assert all(isinstance(event, dict) and "event" in event for event in events), stdout
    for line in stdout.splitlines():
        parse_line(line)
    return events


def run_trainer(spec_path: Path) -> TrainerRun:
    completed = subprocess.run(
        [sys.executable, "-m", "worker.training", str(spec_path)],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=REPO_ROOT,
        timeout=300,
    )
    return TrainerRun(
        returncode=completed.returncode, events=_parse(completed.stdout), stderr=completed.stderr
    )


def run_trainer_and_stop(spec_path: Path, at_step: int) -> TrainerRun:
    """Run the trainer and SIGTERM its process group once the metrics line of `at_step` arrives,
    as the worker does to pause a job."""
    process = subprocess.Popen(
        [sys.executable, "-m", "worker.training", str(spec_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        cwd=REPO_ROOT,
        start_new_session=True,
    )
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        event = json.loads(line)
        if event["event"] == "metrics" and event["step"] == at_step:
            os.killpg(process.pid, signal.SIGTERM)
            break
    stdout, stderr = process.communicate(timeout=300)
    return TrainerRun(returncode=process.returncode, events=_parse("".join(lines) + stdout), stderr=stderr)


def toy_spec(
    directory: Path, model_dir: Path, n_train: int, n_epochs: int, n_valid: int = 0, **overrides
) -> TrainingSpec:
    """A spec on the fruit-colour toy set (batches of 4), written to directory/spec.json."""
    from tests.support.tiny_model import toy_chat_examples, write_jsonl
    from worker.training.spec import Recipe

    directory.mkdir(parents=True, exist_ok=True)
    fields = dict(
        job_id="ftjob-test",
        base_model_dir=str(model_dir),
        training_file=str(write_jsonl(directory / "train.jsonl", toy_chat_examples(n_train))),
        validation_file=(
            str(write_jsonl(directory / "valid.jsonl", toy_chat_examples(n_valid))) if n_valid else None
        ),
        output_dir=str(directory / "out"),
        n_epochs=n_epochs,
        batch_size=4,
        learning_rate=5e-3,
        seed=7,
        recipe=Recipe(max_seq_length=64),
    )
    fields.update(overrides)
    spec = TrainingSpec(**fields)  # type: ignore[arg-type]
    spec.write(directory / "spec.json")
    return spec


def train_to_completion(spec: TrainingSpec, directory: Path) -> TrainerRun:
    run = run_trainer(directory / "spec.json")
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.events[-1]["event"] == "completed", run.events[-3:]
    run.spec = spec
    return run


@dataclass
class InProcessRun:
    """A run through `worker.training.run.train` in the test's own process: for recipe tests, which
    need the model and the artifact, not the protocol (and not a second interpreter's import time)."""

    outcome: object
    events: list[dict]
    spec: TrainingSpec

    def of(self, kind: str) -> list[dict]:
        return [event for event in self.events if event["event"] == kind]

    def losses(self) -> list[float]:
        return [event["train_loss"] for event in self.of("metrics")]


def train_in_process(spec: TrainingSpec) -> InProcessRun:
    import io

    from worker.training.progress import ProgressWriter
    from worker.training.run import train

    stream = io.StringIO()
    previous = signal.getsignal(signal.SIGTERM)
    try:
        outcome = train(spec, ProgressWriter(stream))
    finally:
        signal.signal(signal.SIGTERM, previous)  # the run installs its stop handler
    return InProcessRun(outcome=outcome, events=_parse(stream.getvalue()), spec=spec)


def varied_length_rows(model_dir: Path, n: int, longer_question: int) -> tuple[list[dict], int]:
    """`n` tokenized toy chats of different lengths, so that a padded batch of them really pads
    (the second answer and the `longer_question`-th question made longer), and the pad token id."""
    from transformers import AutoTokenizer

    from tests.support.tiny_model import toy_chat_examples
    from worker.training.data import tokenize_examples

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    examples = toy_chat_examples(n)
    examples[1]["messages"][1]["content"] += " Please answer the question with a short sentence."
    question = examples[longer_question]["messages"][0]
    question["content"] = "Hello, how are you today? " + question["content"]
    tokenized = tokenize_examples(tokenizer, examples).examples
    return [{"input_ids": ex.input_ids, "labels": ex.labels} for ex in tokenized], tokenizer.pad_token_id
