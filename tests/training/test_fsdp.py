"""Fully sharded runs (recipe distributed "fsdp", FSDP2) over 2 gloo processes on CPU, launched by the
worker's real supervisor: gradients are averaged like one process's (pytorch issue 162338), the run
trains like one process and its artifact, gathered on rank 0, loads like a one-process artifact (LoRA,
QLoRA, full), a pause stops every rank at one step and resumes from the gathered checkpoint, and a
killed rank fails the run naming it, with no process left behind."""

from __future__ import annotations

import os
import signal
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from tests.support import fsdp_gradients
from tests.training.test_distributed import losses, ranks_of, replace_recipe, run, spec_of
from tests.training.trainer_runs import REPO_ROOT
from worker.ranks import start_ranks
from worker.supervisor import Action, Watch
from worker.training.progress import Completed, Failed, Message, Metrics, Started, Stopped
from worker.training.spec import Recipe

pytestmark = pytest.mark.slow

# No dropout: its masks are drawn per rank, and would set the two runs apart for no reason of FSDP's.
FSDP = Recipe(type="lora", max_seq_length=64, lora_dropout=0.0, distributed="fsdp", num_gpus=2)


def one_process(recipe: Recipe) -> Recipe:
    return replace_recipe(recipe, distributed="none", num_gpus=1)


@pytest.mark.parametrize("offload", [False, True], ids=["on-device", "cpu-offload"])
def test_two_sharded_ranks_average_their_gradients_to_the_one_process_gradient(
    model_dir: Path, tmp_path: Path, offload: bool
) -> None:
    out = tmp_path / "sharded.pt"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    command = [sys.executable, "-m", "tests.support.fsdp_gradients", str(model_dir), str(out)]
    with (tmp_path / "rank0.log").open("ab") as log:
        ranks = start_ranks(command + (["offload"] if offload else []), env, tmp_path, log, 2)
        returncode, final = ranks.finish(ranks.leader.wait(timeout=300), None)
    assert returncode == 0 and final is None, (tmp_path / "trainer-rank1.log").read_text()

    fsdp_gradients.main(str(model_dir), str(tmp_path / "one.pt"), offload=False)
    one, sharded = torch.load(tmp_path / "one.pt"), torch.load(out)
    assert set(sharded["gradients"]) == set(one["gradients"])
    for name, gradient in one["gradients"].items():
        # Summed instead of averaged, a gradient would be twice as large.
        torch.testing.assert_close(sharded["gradients"][name], gradient, rtol=1e-4, atol=1e-6)
    for name, weight in one["weights"].items():
        torch.testing.assert_close(sharded["weights"][name], weight, rtol=1e-4, atol=1e-6)


def sharding_message(events: list) -> str:
    return next(e.message for e in events if isinstance(e, Message) and e.message.startswith("fsdp:"))


def test_a_sharded_lora_run_trains_like_one_process_and_its_adapter_loads(model_dir, tmp_path) -> None:
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    one_dir, two_dir = tmp_path / "one", tmp_path / "two"
    one, one_events = run(spec_of(one_dir, model_dir, one_process(FSDP)), one_dir, 1)
    two, two_events = run(spec_of(two_dir, model_dir, FSDP), two_dir, 2)

    assert isinstance(one.final_event, Completed), one.stderr_tail
    assert isinstance(two.final_event, Completed), two.stderr_tail
    assert sharding_message(two_events).startswith("fsdp: 2 LlamaDecoderLayer blocks and the root sharded")
    assert len(losses(two_events)) == len(losses(one_events)) == 8
    assert losses(two_events) == pytest.approx(losses(one_events), rel=0.02, abs=0.02)
    # The gathered adapter holds the same tensors as the one-process adapter, under the same names.
    one_adapter = load_file(Path(one.final_event.artifact_dir) / "adapter_model.safetensors")
    two_adapter = load_file(Path(two.final_event.artifact_dir) / "adapter_model.safetensors")
    assert set(two_adapter) == set(one_adapter)
    for name, tensor in one_adapter.items():
        torch.testing.assert_close(two_adapter[name], tensor, rtol=0.05, atol=2e-3)
    assert (two_dir / "out" / "checkpoints" / "step-4" / "adapter_model.safetensors").is_file()
    PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir), two.final_event.artifact_dir)
    assert ranks_of(two_dir / "spec.json") == {}


def test_activation_checkpointing_over_sharded_blocks_trains_like_one_process(model_dir, tmp_path) -> None:
    # The Trainer turns checkpointing on as training starts, after the blocks are sharded: each
    # block's recompute in the backward gathers its parameters again.
    recipe = replace_recipe(FSDP, gradient_checkpointing=True)
    one_dir, two_dir = tmp_path / "one", tmp_path / "two"
    one, one_events = run(spec_of(one_dir, model_dir, one_process(FSDP)), one_dir, 1)
    two, two_events = run(spec_of(two_dir, model_dir, recipe), two_dir, 2)

    assert isinstance(one.final_event, Completed), one.stderr_tail
    assert isinstance(two.final_event, Completed), two.stderr_tail
    assert losses(two_events) == pytest.approx(losses(one_events), rel=0.02, abs=0.02)


def test_a_sharded_full_run_writes_a_whole_model_like_one_process(model_dir, tmp_path) -> None:
    from transformers import AutoModelForCausalLM

    recipe = replace_recipe(FSDP, type="full")
    one_dir, two_dir = tmp_path / "one", tmp_path / "two"
    one, _ = run(spec_of(one_dir, model_dir, one_process(recipe)), one_dir, 1)
    two, _ = run(spec_of(two_dir, model_dir, recipe), two_dir, 2)

    assert isinstance(one.final_event, Completed), one.stderr_tail
    assert isinstance(two.final_event, Completed), two.stderr_tail
    one_model = AutoModelForCausalLM.from_pretrained(one.final_event.artifact_dir)
    two_model = AutoModelForCausalLM.from_pretrained(two.final_event.artifact_dir)
    base = AutoModelForCausalLM.from_pretrained(model_dir).state_dict()
    one_weights, two_weights = one_model.state_dict(), two_model.state_dict()
    assert set(two_weights) == set(one_weights)
    for name, weight in one_weights.items():
        assert not torch.equal(two_weights[name], base[name]) or torch.equal(weight, base[name]), name
        torch.testing.assert_close(two_weights[name], weight, rtol=0.05, atol=2e-3)


def test_a_sharded_qlora_run_stores_4_bit_weights_in_the_compute_dtype_and_its_adapter_loads(
    model_dir, tmp_path
) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    two, events = run(spec_of(tmp_path, model_dir, replace_recipe(FSDP, type="qlora")), tmp_path, 2)

    assert isinstance(two.final_event, Completed), two.stderr_tail
    assert "4-bit weights stored as torch.float32" in sharding_message(events)
    assert losses(events)[-1] < losses(events)[0]
    # 8 packed values in each fp32 element, counted before sharding: the base's values, plus LoRA's.
    base = AutoModelForCausalLM.from_pretrained(model_dir)
    started = next(event for event in events if isinstance(event, Started))
    assert started.total_params == sum(p.numel() for p in base.parameters()) + started.trainable_params
    PeftModel.from_pretrained(base, two.final_event.artifact_dir)


@pytest.mark.parametrize("method", ["dpo", "classification"])
def test_dpo_and_classification_train_sharded_and_their_adapters_load(model_dir, tmp_path, method) -> None:
    from peft import PeftModel
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification

    from tests.training.test_methods import classification_spec, classify, dpo_spec

    if method == "dpo":
        spec = dpo_spec(tmp_path, model_dir, "lora", 5e-3)
    else:
        spec = classification_spec(tmp_path, model_dir, Recipe(type="lora", max_seq_length=64), 1e-2)
    spec = replace(spec, recipe=replace_recipe(spec.recipe, distributed="fsdp", num_gpus=2))
    done, events = run(spec, tmp_path, 2)

    assert isinstance(done.final_event, Completed), done.stderr_tail
    artifact = Path(done.final_event.artifact_dir)
    assert sharding_message(events).startswith("fsdp: 2 LlamaDecoderLayer blocks")
    if method == "dpo":
        # TRL's reference adapter was sharded too, and stays out of the artifact.
        assert max(losses(events)[-3:]) < 0.3, losses(events)
        PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir), artifact)
    else:
        # The new head trained beside the adapter (its weights gathered with it).
        config = AutoConfig.from_pretrained(artifact)
        base = AutoModelForSequenceClassification.from_pretrained(model_dir, config=config)
        assert classify(PeftModel.from_pretrained(base, artifact), artifact) >= 0.75


def test_a_pause_stops_every_sharded_rank_and_the_run_resumes_from_the_gathered_checkpoint(
    model_dir, tmp_path
) -> None:
    asked: list[Action] = [Action.CONTINUE]
    watch = Watch(lambda: asked[0], interval=0.2)

    def pause_at_step_2(event: Metrics) -> None:
        if event.step >= 2:
            asked[0] = Action.STOP

    spec = spec_of(tmp_path, model_dir, FSDP)
    stopped, _ = run(spec, tmp_path, 2, watch, pause_at_step_2)

    assert isinstance(stopped.final_event, Stopped), stopped.stderr_tail
    checkpoint = Path(str(stopped.final_event.resume_from))
    # Gathered: one file of weights and one of optimizer state, whatever the number of ranks.
    assert {"model_state.pt", "optimizer.pt", "scheduler.pt", "trainer_state.json"} <= {
        path.name for path in checkpoint.iterdir()
    }
    resumed, events = run(replace(spec, resume_from=str(checkpoint)), tmp_path, 2)
    assert isinstance(resumed.final_event, Completed), resumed.stderr_tail
    assert min(event.step for event in events if isinstance(event, Metrics)) == stopped.final_event.step + 1
    # Resumed on the optimizer state it saved, the run ends where an unpaused one does.
    whole, whole_events = run(spec_of(tmp_path / "whole", model_dir, FSDP), tmp_path / "whole", 2)
    assert isinstance(whole.final_event, Completed), whole.stderr_tail
    assert losses(events)[-1] == pytest.approx(losses(whole_events)[-1], rel=0.02, abs=0.02)


def test_a_killed_sharded_rank_fails_the_run_naming_it_and_leaves_no_process(model_dir, tmp_path) -> None:
    spec_path = tmp_path / "spec.json"

    def kill_rank_1(event: Metrics) -> None:
        pids = ranks_of(spec_path)
        if event.step == 1 and 1 in pids:
            os.kill(pids[1], signal.SIGKILL)

    exit_, _ = run(spec_of(tmp_path, model_dir, FSDP), tmp_path, 2, on_metrics=kill_rank_1)

    assert exit_.returncode != 0
    assert isinstance(exit_.final_event, Failed)
    assert exit_.final_event.message.startswith("rank 1 of 2 was killed by SIGKILL")
    assert ranks_of(spec_path) == {}
