"""`python -m worker.cluster.entrypoint SPEC CHANNEL PLACEMENT_SECONDS`: a multi-node run's Ray job.

It runs a Ray Train `TorchTrainer` over recipe num_nodes x num_gpus workers, one rank each
(rank.py), and prints rank 0's protocol lines, prefixed, as they arrive through the run's channel:
the job's log is what the driver follows. Ranks the cluster cannot place (reserve) within
PLACEMENT_SECONDS fail the run saying what it asked for and what the cluster has (Ray itself
would wait for ever).
A run that fails (a rank's trainer, or a node lost from the cluster) ends with one `failed` line
saying what each failed rank met (rank 0's own `failed` line held back and folded in), the cause
first.
"""

from __future__ import annotations

import io
import re
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from worker.cluster.channel import NAMESPACE, PROGRESS_PREFIX, RunChannel
from worker.cluster.rank import run_rank
from worker.training.progress import (
    Failed,
    Message,
    ProgressWriter,
    ProtocolError,
    TrainerEvent,
    parse_line,
)
from worker.training.spec import TrainingSpec

PULL_SECONDS = 0.2
RANK_FAILED = re.compile(r"rank \d+ of \d+ on node \S+ [^\n]*")


def main(argv: list[str]) -> int:
    spec_path, channel_name, placement_seconds = Path(argv[0]), argv[1], float(argv[2])
    recipe = TrainingSpec.read(spec_path).recipe
    world = recipe.num_nodes * recipe.num_gpus
    ray.init(namespace=NAMESPACE, log_to_driver=False)
    # On this node (the head, where Ray runs job entrypoints): a node lost mid-run must not take the
    # channel, and with it the run's last words, along.
    here = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False)
    channel = RunChannel.options(name=channel_name, scheduling_strategy=here).remote()  # type: ignore[attr-defined]
    outcome: dict[str, Any] = {}
    fit = threading.Thread(target=_fit, args=(spec_path, recipe, channel, outcome), daemon=True)
    fit.start()
    _say(Message(f"Waiting for the Ray cluster to place {world} ranks ({_placement(recipe)})"))
    place_by = time.monotonic() + placement_seconds
    placed = False
    rank0_failed: Failed | None = None
    while True:
        alive = fit.is_alive()
        if not placed and alive:
            placed = ray.get(channel.ranks_started.remote()) > 0 or _placement_group_created()
            if not placed and time.monotonic() > place_by:
                # Ray would wait for resources for ever (an autoscaler may bring them): we don't.
                _say(Failed(code="training_error", message=_unplaceable(recipe, world, placement_seconds)))
                return 1
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
    _say(_failure(error, rank0_failed, world))
    return 1


def _placement_group_created() -> bool:
    """Whether the cluster reserved the run's ranks: the placement group Ray Train made for this job
    exists. Ranks that start slowly then (a busy node importing torch) are not unplaceable."""
    # A placement group's id ends with the id of the job that made it (Ray's PlacementGroupID).
    job = ray.get_runtime_context().get_job_id()
    table = ray.util.placement_group_table()
    return any(pg_id.endswith(job) and pg.get("state") == "CREATED" for pg_id, pg in table.items())


def _placement(recipe: Any) -> str:
    per_rank = "1 GPU" if _use_gpu() else "1 CPU"
    spread = "one a node" if recipe.num_gpus == 1 else f"{recipe.num_gpus} a node"
    return f"{per_rank} each, {spread}"


def _unplaceable(recipe: Any, world: int, seconds: float) -> str:
    nodes = [node for node in ray.nodes() if node.get("Alive")]
    return (
        f"the Ray cluster could not place {world} ranks ({_placement(recipe)}) within {seconds:.0f} s: "
        f"it has {len(nodes)} live node{'s' if len(nodes) != 1 else ''} with {ray.cluster_resources()}. "
        "Ask for fewer num_nodes or num_gpus, or grow the cluster's worker group."
    )


def _use_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def _failure(error: BaseException | None, rank0: Failed | None, world: int) -> Failed:
    """One `failed` line for the run: what each rank that failed met, the cause first. A rank lost
    with its node makes the others fail in their next collective, so the lost ranks come first,
    whichever they are (rank 0 itself may be the one on the node that died)."""
    failures: dict[int, BaseException] = dict(getattr(error, "worker_failures", None) or {})
    said: list[tuple[bool, int, str]] = []  # (not lost, rank, what it met)
    for rank, failure in failures.items():
        if rank == 0 and rank0 is not None:
            continue  # rank 0's own words (below) say more than Ray's wrapping of them
        text, lost = _one_failure(rank, failure, world)
        said.append((not lost, rank, text))
    if rank0 is not None:
        said.append((True, 0, f"rank 0 of {world}: {rank0.message}"))
    parts = [text for _, _, text in sorted(said)]
    if not parts:
        parts.append(f"the Ray Train run failed: {type(error).__name__}: {error}")
    code = rank0.code if rank0 is not None and len(parts) == 1 else "training_error"
    return Failed(code=code, message="; ".join(parts))


def _fit(spec_path: Path, recipe: Any, channel: Any, outcome: dict[str, Any]) -> None:
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    try:
        use_gpu = _use_gpu()
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


def _one_failure(rank: int, failure: BaseException, world: int) -> tuple[str, bool]:
    """What a rank met, and whether it was lost with its Ray worker (rather than failing itself)."""
    text = str(failure)
    said = RANK_FAILED.search(text)  # a RankFailed of rank.py, under Ray's wrapping
    if said:
        return said.group(0), False
    lines = text.strip().splitlines()
    cause = lines[-1] if lines else type(failure).__name__
    return (
        f"rank {rank} of {world} was lost with its Ray worker (its node died or was stopped): {cause[-800:]}",
        True,
    )


def _say(event: TrainerEvent) -> None:
    """One protocol line of the entrypoint's own, on the job's log."""
    stream = io.StringIO()
    ProgressWriter(stream).emit(event)
    print(PROGRESS_PREFIX + stream.getvalue().rstrip("\n"), flush=True)


def _event(line: str) -> TrainerEvent | None:
    try:
        return parse_line(line.encode())
    except ProtocolError:
        return None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
