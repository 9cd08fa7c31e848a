"""A worker that takes over a multi-node job (the first one lost its lease) stops the Ray job the
first one left on the cluster before it submits its own, and leaves other jobs' runs alone."""

from __future__ import annotations

import time

import pytest

from tests.support.ray_cluster import RayCluster
from worker.cluster.driver import JOB_METADATA_KEY, TERMINAL, stop_earlier_runs

pytestmark = pytest.mark.slow


def wait_for_status(client, submission_id: str, wanted: set[str], timeout: float = 120) -> str:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while (status := str(client.get_job_status(submission_id))) not in wanted:
        assert time.monotonic() < deadline, f"{submission_id} is {status}, not {wanted}"
        time.sleep(0.5)
    return status


def test_a_run_left_by_an_earlier_worker_is_stopped_and_others_are_not(cluster: RayCluster) -> None:
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(cluster.address)
    left = client.submit_job(entrypoint="sleep 600", metadata={JOB_METADATA_KEY: "ftjob-taken-over"})
    other = client.submit_job(entrypoint="sleep 600", metadata={JOB_METADATA_KEY: "ftjob-another"})
    for submission_id in (left, other):
        wait_for_status(client, submission_id, {"RUNNING"})

    stop_earlier_runs(client, "ftjob-taken-over")

    assert wait_for_status(client, left, set(TERMINAL)) == "STOPPED"
    assert str(client.get_job_status(other)) == "RUNNING"
    client.stop_job(other)
