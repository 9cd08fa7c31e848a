"""Gradients of 2 gloo ranks equal those of one process on the whole batch: the ranks' gradients are
averaged, not summed (what pytorch issue 162338 once got wrong for FSDP2 on gloo). The ranks are
started and meet exactly as a job's do (worker/ranks.py, worker/training/distributed.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
from torch import nn

from tests.support.ddp_gradients import model_and_batch
from tests.training.trainer_runs import REPO_ROOT
from worker.ranks import start_ranks


def test_two_ranks_average_their_gradients_to_the_one_process_gradient(tmp_path: Path) -> None:
    out = tmp_path / "gradients.pt"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    command = [sys.executable, "-m", "tests.support.ddp_gradients", str(out)]
    with (tmp_path / "rank0.log").open("ab") as log:
        ranks = start_ranks(command, env, tmp_path, log, 2)
        returncode, final = ranks.finish(ranks.leader.wait(timeout=300), None)
    assert returncode == 0 and final is None, (tmp_path / "trainer-rank1.log").read_text()

    model, inputs, targets = model_and_batch()
    nn.functional.cross_entropy(model(inputs), targets).backward()
    distributed = torch.load(out)
    for name, parameter in model.named_parameters():
        torch.testing.assert_close(distributed[name], parameter.grad, rtol=1e-5, atol=1e-6)
