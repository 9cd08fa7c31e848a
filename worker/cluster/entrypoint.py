"""`python -m worker.cluster.entrypoint SPEC CHANNEL`: the entrypoint of a multi-node run's Ray job.

It runs a Ray Train `TorchTrainer` over recipe num_nodes x num_gpus workers, one rank each
(rank.py), and prints rank 0's protocol lines, prefixed, as they arrive through the run's channel:
the job's log is what the driver follows. A run that fails (a rank's trainer, or a node lost from
the cluster) ends with a `failed` line of its own saying which, unless rank 0 already wrote one.
"""

from __future__ import annotations

import io
import sys
import threading
from pathlib import Path
from typing import Any

import ray

from worker.cluster.channel import NAMESPACE, PROGRESS_PREFIX, RunChannel
from worker.cluster.rank import run_rank
from worker.training.progress import FINAL_EVENTS, Failed, ProgressWriter, ProtocolError, parse_line
from worker.training.spec import TrainingSpec

PULL_SECONDS = 0.2


def main(argv: list[str]) -> int:
    spec_path, channel_name = Path(argv[0]), argv[1]
    recipe = TrainingSpec.read(spec_path).recipe
    ray.init(namespace=NAMESPACE, log_to_driver=False)
    channel = RunChannel.options(name=channel_name).remote()  # type: ignore[attr-defined]
    outcome: dict[str, Any] = {}
    fit = threading.Thread(target=_fit, args=(spec_path, recipe, channel, outcome), daemon=True)
    fit.start()
    ended = False
    while True:
        alive = fit.is_alive()
        for line in ray.get(channel.pull.remote()):
            print(PROGRESS_PREFIX + line, flush=True)
            ended = ended or _is_final(line)
        if not alive:
            break
        fit.join(PULL_SECONDS)
    error = outcome.get("error")
    if error is None:
        return 0
    if not ended:
        print(PROGRESS_PREFIX + _failed_line(_describe_failure(error)), flush=True)
    return 1


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


def _describe_failure(error: BaseException) -> str:
    failures = getattr(error, "worker_failures", None)
    if failures:
        return "; ".join(_one_failure(rank, failure) for rank, failure in sorted(failures.items()))
    return f"the Ray Train run failed: {type(error).__name__}: {error}"


def _one_failure(rank: int, failure: BaseException) -> str:
    text = str(failure)
    if "RankFailed" in type(failure).__name__ or text.startswith(f"rank {rank} of"):
        return text
    cause = text.strip().splitlines()[-1] if text.strip() else type(failure).__name__
    return f"rank {rank} was lost with its Ray worker (its node died or was stopped): {cause[-1000:]}"


def _failed_line(message: str) -> str:
    stream = io.StringIO()
    ProgressWriter(stream).emit(Failed(code="training_error", message=message))
    return stream.getvalue().rstrip("\n")


def _is_final(line: str) -> bool:
    try:
        return isinstance(parse_line(line.encode()), FINAL_EVENTS)
    except ProtocolError:
        return False


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
