"""The one `failed` line of a cluster run puts the cause first: the rank lost with its node, whichever
rank that is. Built from the failures Ray Train reports, without a cluster (rank 0 is as likely as
rank 1 to be on the node that died: a test killing node 1 met both)."""

from __future__ import annotations

import pytest

pytest.importorskip("ray")

from worker.cluster.entrypoint import _failure
from worker.training.progress import Failed

LOST = "RpcError: failed to connect to all addresses: Connection refused"
EXITED = "RankFailed: rank {rank} of 2 on node 10.231.0.{host} exited with code 1. Its log ends: gloo"


class TrainingFailed(Exception):
    def __init__(self, worker_failures: dict[int, BaseException]) -> None:
        super().__init__("Training failed")
        self.worker_failures = worker_failures


@pytest.mark.parametrize("lost_rank", [0, 1])
def test_the_rank_lost_with_its_node_comes_first(lost_rank: int) -> None:
    other = 1 - lost_rank
    failures = {lost_rank: RuntimeError(LOST), other: RuntimeError(EXITED.format(rank=other, host=2))}
    message = _failure(TrainingFailed(failures), None, 2).message
    first, second = message.split("; ")
    assert first.startswith(f"rank {lost_rank} of 2 was lost with its Ray worker"), message
    assert second.startswith(f"rank {other} of 2 on node 10.231.0.2 exited with code 1"), message


def test_rank_zeros_own_words_replace_rays_wrapping_of_them() -> None:
    rank0 = Failed(code="training_error", message="RuntimeError: Connection closed by peer")
    failures = {0: RuntimeError("wrapped"), 1: RuntimeError(LOST)}
    message = _failure(TrainingFailed(failures), rank0, 2).message
    assert message.split("; ") == [
        f"rank 1 of 2 was lost with its Ray worker (its node died or was stopped): {LOST}",
        "rank 0 of 2: RuntimeError: Connection closed by peer",
    ]


def test_a_failure_with_no_rank_says_what_ray_said() -> None:
    failed = _failure(RuntimeError("no placement"), None, 2)
    assert failed.message == "the Ray Train run failed: RuntimeError: no placement"
