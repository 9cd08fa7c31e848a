"""Distributed data parallel runs (recipe distributed "ddp") over 2 gloo processes on CPU, launched
by the worker's real supervisor: the run trains like one process, rank 0 alone reports and writes,
a pause stops every rank at one step and resumes, and a killed rank fails the run naming it, with no
process left behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from tests.training.trainer_runs import toy_spec
from worker.supervisor import Action, TrainerExit, Watch, run_trainer
from worker.training.progress import Completed, Failed, Metrics, Stopped
from worker.training.spec import Recipe, TrainingSpec

pytestmark = pytest.mark.slow

DDP = Recipe(type="lora", max_seq_length=64, distributed="ddp", num_gpus=2)


def spec_of(tmp_path: Path, model_dir: Path, recipe: Recipe, **overrides) -> TrainingSpec:  # type: ignore[no-untyped-def]
    return toy_spec(
        tmp_path, model_dir, n_train=16, n_epochs=2, recipe=recipe, learning_rate=5e-3, **overrides
    )


def run(spec: TrainingSpec, directory: Path, processes: int, watch: Watch | None = None, on_metrics=None):  # type: ignore[no-untyped-def]
    spec.write(directory / "spec.json")
    events: list = []

    def on_event(event) -> None:  # type: ignore[no-untyped-def]
        events.append(event)
        if on_metrics is not None and isinstance(event, Metrics):
            on_metrics(event)

    exit_ = run_trainer(directory / "spec.json", directory / "trainer.log", on_event, watch, processes)
    return exit_, events


def ranks_of(spec_path: Path) -> dict[int, int]:
    """{rank: pid} of the trainer processes running `spec_path`, read from /proc."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(spec_path).encode() in cmdline:
            rank = next((v[5:] for v in environ if v.startswith(b"RANK=")), b"0")
            found[int(rank)] = int(entry.name)
    return found


def listening_addresses(pids: set[int]) -> set[str]:
    """The local addresses that processes `pids` listen on (TCP), from `ss`."""
    out = subprocess.run(["ss", "-tlnpH"], capture_output=True, text=True, check=True).stdout
    found = set()
    for line in out.splitlines():
        owners = {int(pid) for pid in re.findall(r"pid=(\d+)", line)}
        if owners & pids:
            found.add(line.split()[3].rsplit(":", 1)[0])
    return found


def losses(events: list) -> list[float]:
    return [event.train_loss for event in events if isinstance(event, Metrics)]


def test_two_ranks_train_like_one_process_and_rank_0_writes_the_artifact(model_dir, tmp_path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    one_dir, two_dir = tmp_path / "one", tmp_path / "two"
    one, one_events = run(
        spec_of(one_dir, model_dir, replace_recipe(DDP, distributed="none", num_gpus=1)), one_dir, 1
    )
    addresses: set[str] = set()

    def look_at_sockets(event: Metrics) -> None:
        addresses.update(listening_addresses(set(ranks_of(two_dir / "spec.json").values())))

    two, two_events = run(spec_of(two_dir, model_dir, DDP), two_dir, 2, on_metrics=look_at_sockets)

    assert isinstance(one.final_event, Completed), one.stderr_tail
    assert isinstance(two.final_event, Completed), two.stderr_tail
    # The same 8 steps of 4 examples (2 a rank), the same data order: the same losses.
    assert len(losses(two_events)) == len(losses(one_events)) == 8
    assert losses(two_events) == pytest.approx(losses(one_events), rel=0.02, abs=0.02)
    assert (two_dir / "trainer-rank1.log").is_file()
    # The ranks talk over loopback only: nothing listens on the machine's address or on all of them.
    assert addresses and addresses <= {"127.0.0.1", "[::1]"}, addresses
    base = AutoModelForCausalLM.from_pretrained(model_dir)
    PeftModel.from_pretrained(base, two.final_event.artifact_dir)
    assert ranks_of(two_dir / "spec.json") == {}


def replace_recipe(recipe: Recipe, **fields) -> Recipe:  # type: ignore[no-untyped-def]
    return Recipe.from_dict({**recipe.model_dump(), **fields})


def test_a_pause_stops_every_rank_at_one_step_and_the_run_resumes(model_dir, tmp_path) -> None:
    asked: list[Action] = [Action.CONTINUE]
    watch = Watch(lambda: asked[0], interval=0.2)

    def pause_at_step_2(event: Metrics) -> None:
        if event.step >= 2:
            asked[0] = Action.STOP

    spec = spec_of(tmp_path, model_dir, DDP)
    stopped, _ = run(spec, tmp_path, 2, watch, pause_at_step_2)

    assert isinstance(stopped.final_event, Stopped), stopped.stderr_tail
    assert stopped.final_event.resume_from
    resumed, events = run(replace(spec, resume_from=stopped.final_event.resume_from), tmp_path, 2)
    assert isinstance(resumed.final_event, Completed), resumed.stderr_tail
    assert min(event.step for event in events if isinstance(event, Metrics)) > stopped.final_event.step


def test_a_killed_rank_fails_the_run_naming_it_and_leaves_no_process(model_dir, tmp_path) -> None:
    spec_path = tmp_path / "spec.json"

    def kill_rank_1(event: Metrics) -> None:
        pids = ranks_of(spec_path)
        if event.step == 1 and 1 in pids:
            os.kill(pids[1], signal.SIGKILL)

    exit_: TrainerExit
    exit_, _ = run(spec_of(tmp_path, model_dir, DDP), tmp_path, 2, on_metrics=kill_rank_1)

    assert exit_.returncode != 0
    assert isinstance(exit_.final_event, Failed)
    assert exit_.final_event.message.startswith("rank 1 of 2 was killed by SIGKILL")
    assert ranks_of(spec_path) == {}


def test_a_reinforcement_step_takes_batch_size_prompts_across_both_ranks(model_dir, tmp_path) -> None:
    from tests.support.tiny_model import write_jsonl
    from tests.training.test_reinforcement import RED, prompts

    spec = toy_spec(
        tmp_path,
        model_dir,
        n_train=1,
        n_epochs=1,
        recipe=DDP,
        method="reinforcement",
        training_file=str(write_jsonl(tmp_path / "prompts.jsonl", prompts(8))),
        grader=RED,
        num_generations=2,
        max_completion_tokens=4,
        batch_size=4,
    )
    exit_, events = run(spec, tmp_path, 2)
    assert isinstance(exit_.final_event, Completed), exit_.stderr_tail
    # 8 prompts, 4 a step (2 on each rank): 2 steps, not the 1 that 4 prompts per rank would make.
    assert [event.step for event in events if isinstance(event, Metrics)] == [1, 2]
