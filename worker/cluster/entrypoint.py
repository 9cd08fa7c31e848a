"""`python -m worker.cluster.entrypoint SPEC CHANNEL`: the entrypoint of a multi-node run's Ray job.

It runs a Ray Train `TorchTrainer` over recipe num_nodes x num_gpus workers, one rank each
(rank.py), and prints rank 0's protocol lines, prefixed, as they arrive through the run's channel:
the job's log is what the driver follows. A run that fails (a rank's trainer, or a node lost from
the cluster) ends with one `failed` line saying what each failed rank met (rank 0's own `failed`
line held back and folded in), the cause first.
"""

from __future__ import annotations

import io
import re
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from worker.cluster.channel import NAMESPACE, PROGRESS_PREFIX, RunChannel
from worker.cluster.rank import run_rank
from worker.training.progress import (
    Failed,
    ProgressWriter,
    ProtocolError,
    TrainerEvent,
    parse_line,
)
from worker.training.spec import TrainingSpec

PULL_SECONDS = 0.2
RANK_FAILED = re.compile(r"rank \d+ of \d+ on node \S+ [^\n]*")


def main(argv: list[str]) -> int:
    spec_path, channel_name = Path(argv[0]), argv[1]
    recipe = TrainingSpec.read(spec_path).recipe
    ray.init(namespace=NAMESPACE, log_to_driver=False)
    # On this node (the head, where Ray runs job entrypoints): a node lost mid-run must not take the
    # channel, and with it the run's last words, along.
    here = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False)
    channel = RunChannel.options(name=channel_name, scheduling_strategy=here).remote()  # type: ignore[attr-defined]
    outcome: dict[str, Any] = {}
    fit = threading.Thread(target=_fit, args=(spec_path, recipe, channel, outcome), daemon=True)
    fit.start()
    rank0_failed: Failed | None = None
    while True:
        alive = fit.is_alive()
        for line in ray.get(channel.pull.remote()):
            event = _event(line)
            if isinstance(event, Failed):
                rank0_failed = event  # said once the run is over, with what the other ranks met
                continue
            print(PROGRESS_PREFIX + line, flush=True)
        if not alive:
            break
        fit.join(PULL_SECONDS)
    error = outcome.get("error")
    if error is not None:
        traceback.print_exception(error, file=sys.stderr)  # the job's log, kept as trainer.log
    if error is None and rank0_failed is None:
        return 0
    world = recipe.num_nodes * recipe.num_gpus
    print(PROGRESS_PREFIX + _failed_line(_failure(error, rank0_failed, world)), flush=True)
    return 1


def _failure(error: BaseException | None, rank0: Failed | None, world: int) -> Failed:
    """One `failed` line for the run: what each rank that failed met, the others' first (a rank lost
    makes rank 0 fail in its next collective: the cause comes first)."""
    failures: dict[int, BaseException] = dict(getattr(error, "worker_failures", None) or {})
    parts = [_one_failure(rank, failure, world) for rank, failure in sorted(failures.items()) if rank != 0]
    if rank0 is not None:
        parts.append(f"rank 0 of {world}: {rank0.message}")
    elif 0 in failures:
        parts.append(_one_failure(0, failures[0], world))
    if not parts:
        parts.append(f"the Ray Train run failed: {type(error).__name__}: {error}")
    code = rank0.code if rank0 is not None and len(parts) == 1 else "training_error"
    return Failed(code=code, message="; ".join(parts))


def _fit(spec_path: Path, recipe: Any, channel: Any, outcome: dict[str, Any]) -> None:
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    try:
        import torch

        use_gpu = torch.cuda.is_available()
        trainer = TorchTrainer(
            run_rank,
            train_loop_config={"spec": str(spec_path), "channel": channel},
            torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
            scaling_config=ScalingConfig(
                num_workers=recipe.num_nodes * recipe.num_gpus,
                use_gpu=use_gpu,
                resources_per_worker=None if use_gpu else {"CPU": 1},
                # One rank a node when each node trains one; else fill each node's GPUs first.
                placement_strategy="STRICT_SPREAD" if recipe.num_gpus == 1 else "PACK",
            ),
            run_config=RunConfig(
                name=spec_path.parent.name,
                storage_path=str(spec_path.parent / "ray"),
                # A lost rank fails the attempt; the job's own attempts (TUNERY_MAX_ATTEMPTS) and its
                # resumable checkpoint are what retry it, not Ray restarting ranks mid-step.
                failure_config=FailureConfig(max_failures=0),
            ),
        )
        trainer.fit()
    except BaseException as error:
        outcome["error"] = error


def _one_failure(rank: int, failure: BaseException, world: int) -> str:
    text = str(failure)
    said = RANK_FAILED.search(text)  # a RankFailed of rank.py, under Ray's wrapping
    if said:
        return said.group(0)
    lines = text.strip().splitlines()
    cause = lines[-1] if lines else type(failure).__name__
    return (
        f"rank {rank} of {world} was lost with its Ray worker (its node died or was stopped): {cause[-800:]}"
    )


def _failed_line(failed: Failed) -> str:
    stream = io.StringIO()
    ProgressWriter(stream).emit(failed)
    return stream.getvalue().rstrip("\n")


def _event(line: str) -> TrainerEvent | None:
    try:
        return parse_line(line.encode())
    except ProtocolError:
        return None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
