"""The run's channel on the cluster: one small actor that carries rank 0's protocol lines to the job's
entrypoint, and the driver's request to stop (a pause) to every rank.

Lines of the job's log that carry protocol events start with PROGRESS_PREFIX; everything else in that
log is Ray's or Python's own output, kept as the job's trainer.log.
"""

from __future__ import annotations

import ray

NAMESPACE = "tunery"
"""The Ray namespace of Tunery's actors: a stop request (stop.py) finds the run's channel by name."""

PROGRESS_PREFIX = "tunery-progress "


def channel_name(submission_id: str) -> str:
    return f"channel-{submission_id}"


@ray.remote(num_cpus=0)
class RunChannel:
    def __init__(self) -> None:
        self._lines: list[str] = []
        self._stop = False
        self._ranks_started = 0

    def push(self, line: str) -> None:
        self._lines.append(line)

    def pull(self) -> list[str]:
        lines, self._lines = self._lines, []
        return lines

    def rank_started(self) -> None:
        self._ranks_started += 1

    def ranks_started(self) -> int:
        return self._ranks_started

    def request_stop(self) -> None:
        self._stop = True

    def stop_requested(self) -> bool:
        return self._stop
