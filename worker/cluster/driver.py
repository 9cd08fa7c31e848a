"""The worker as the driver of a multi-node run: the run submitted to the Ray cluster at
TUNERY_RAY_ADDRESS as a Ray job, its log followed, its protocol lines relayed, cancel and pause
enforced, and its end told in the same `TrainerExit` a local trainer's end is.

Everything goes through Ray's Job Submission API (HTTP and a websocket to the head's dashboard port):
the worker joins no Ray cluster and needs no Ray version of its own beyond the client. The job's log
is kept as the job's trainer.log; its lines that carry protocol events are read with the supervisor's
`read_line`, so a run on the cluster reaches the job's events and metrics as a local one does.

- cancel (or the job lost to another worker): the Ray job is stopped, which kills its entrypoint;
  Ray then ends the run's actors, and each rank's trainer dies with its Ray worker.
- pause (or the worker shutting down): a second, tiny Ray job (stop.py) asks every rank to send its
  trainer SIGTERM, so the run checkpoints and stops as a local one does; a run still going after the
  watch's stop_grace is stopped outright.
- a run of the same job that an earlier worker left on the cluster is stopped before this one starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from worker.cluster.channel import PROGRESS_PREFIX, channel_name
from worker.supervisor import Action, TrainerExit, UnreadableLine, Watch, Watcher, log_tail, read_line
from worker.training.progress import FINAL_EVENTS, Completed, Failed, Message, Stopped, TrainerEvent

log = logging.getLogger("tunery.worker.cluster")

JOB_METADATA_KEY = "tunery_job"
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


def run_on_cluster(
    address: str,
    placement_seconds: float,
    job_id: str,
    spec_path: Path,
    log_path: Path,
    on_event: Callable[[TrainerEvent | UnreadableLine], None],
    watch: Watch,
) -> TrainerExit:
    from ray.job_submission import JobSubmissionClient

    submission_id = f"tunery-{job_id}-{uuid.uuid4().hex[:8]}"
    channel = channel_name(submission_id)
    try:
        client = JobSubmissionClient(address)
        stop_earlier_runs(client, job_id)
        client.submit_job(
            entrypoint=f"python -m worker.cluster.entrypoint {shlex.quote(str(spec_path))} {channel} "
            f"{placement_seconds}",
            submission_id=submission_id,
            metadata={JOB_METADATA_KEY: job_id},
        )
    except Exception as error:
        message = f"the Ray cluster at {address} did not take the run: {type(error).__name__}: {error}"
        return TrainerExit(1, Failed(code="training_error", message=message), "", Action.CONTINUE)
    log.info("job %s: submitted to the Ray cluster at %s as %s", job_id, address, submission_id)
    on_event(Message(f"Submitted to the Ray cluster at {address} as Ray job {submission_id}"))

    def ask_ranks_to_stop() -> None:
        # Ray's own stop kills 3 s after SIGTERM, too soon to checkpoint: a second Ray job has every
        # rank send its trainer SIGTERM instead.
        client.submit_job(
            entrypoint=f"python -m worker.cluster.stop {channel}",
            submission_id=f"{submission_id}-stop-{uuid.uuid4().hex[:4]}",
        )

    def stop_the_run() -> None:
        client.stop_job(submission_id)

    watcher = Watcher(watch, stop=ask_ranks_to_stop, kill=stop_the_run, what=f"run {submission_id}")
    final: Completed | Failed | Stopped | None = None
    try:
        with log_path.open("a", encoding="utf-8") as job_log:
            relay = _Relay(on_event, job_log, watcher)
            try:
                # Ray's log tail can end while the job still runs (ray-project/ray#60665): it is
                # followed again, from where it was, until the job is over.
                asyncio.run(relay.follow(client, submission_id))
                while str(client.get_job_status(submission_id)) not in TERMINAL:
                    log.warning(
                        "job %s: the log tail of %s ended early; following it again", job_id, submission_id
                    )
                    time.sleep(1.0)
                    asyncio.run(relay.follow(client, submission_id))
                returncode, lost = _ending(client, submission_id)
                # It can also end before the log does (ray-project/ray#46413, #48701): the whole
                # log, read once the job is over, supplies the lines the tail missed.
                try:
                    relay.catch_up(client.get_job_logs(submission_id))
                except Exception:  # what the tail delivered stands
                    log.warning("job %s: could not read the whole log of %s", job_id, submission_id)
                    relay.end()
            except Exception as error:  # the head went away, or answers no more
                log.exception("job %s: lost the Ray cluster while following %s", job_id, submission_id)
                with contextlib.suppress(Exception):
                    client.stop_job(submission_id)
                returncode, lost = 1, f"lost the Ray cluster at {address}: {type(error).__name__}: {error}"
            final = relay.final
    finally:
        watcher.finish()
    if watcher.action is not Action.KILL and returncode != 0 and not isinstance(final, Failed):
        final = Failed(code="training_error", message=lost or f"the Ray job {submission_id} failed")
    return TrainerExit(returncode, final, log_tail(log_path), watcher.action)


def stop_earlier_runs(client: Any, job_id: str) -> None:
    for details in client.list_jobs():
        metadata = details.metadata or {}
        if metadata.get(JOB_METADATA_KEY) == job_id and str(details.status) not in TERMINAL:
            log.warning("job %s: stopping its earlier Ray job %s", job_id, details.submission_id)
            client.stop_job(details.submission_id)


class _Relay:
    def __init__(
        self,
        on_event: Callable[[TrainerEvent | UnreadableLine], None],
        job_log: IO[str],
        watcher: Watcher,
    ) -> None:
        self.on_event = on_event
        self.job_log = job_log
        self.watcher = watcher
        self.final: Completed | Failed | Stopped | None = None
        self.relayed = 0  # complete lines taken from the log so far
        self.pending = ""  # the start of a line not yet ended

    async def follow(self, client: Any, submission_id: str) -> None:
        """Relay the job's log as Ray's tail delivers it (from its first line: a second tail
        relays only the lines past those the first one did)."""
        seen, pending = 0, ""
        async for chunk in client.tail_job_logs(submission_id):
            pending += chunk
            *lines, pending = pending.split("\n")
            for line in lines:
                seen += 1
                if seen > self.relayed:
                    self.line(line)
        if seen >= self.relayed:
            self.pending = pending

    def catch_up(self, whole_log: str) -> None:
        """Relay the lines of the finished job's whole log that the tail did not deliver."""
        lines = whole_log.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        for line in lines[self.relayed :]:
            self.line(line)
        self.pending = ""

    def end(self) -> None:
        """Relay the tail's unended last line, where the whole log cannot be read."""
        if self.pending:
            self.line(self.pending)
            self.pending = ""

    def line(self, line: str) -> None:
        self.relayed += 1
        if not line.startswith(PROGRESS_PREFIX):
            self.job_log.write(line + "\n")
            self.job_log.flush()
            return
        event = read_line(line[len(PROGRESS_PREFIX) :].encode())
        if isinstance(event, FINAL_EVENTS):
            self.final = event
        if self.watcher.action is Action.KILL:
            return  # cancelled, or no longer ours: what the run still says is moot (as in supervisor.py)
        self.on_event(event)


def _ending(client: Any, submission_id: str, wait: float = 30.0) -> tuple[int, str]:
    """The entrypoint's exit status once the job is over, and Ray's word on it when it failed."""
    deadline = time.monotonic() + wait
    info = client.get_job_info(submission_id)
    while str(info.status) not in TERMINAL and time.monotonic() < deadline:
        time.sleep(0.5)
        info = client.get_job_info(submission_id)
    status = str(info.status)
    if status == "SUCCEEDED":
        return 0, ""
    code = info.driver_exit_code
    # Ray's message quotes the whole log after its first line: that is in trainer.log already.
    said = (info.message or "no message").strip().splitlines()[0][:500]
    return (code if code not in (None, 0) else 1), f"the Ray job {submission_id} ended {status}: {said}"
